//! Hosting tasks: where each stands in its input, whether it changed since
//! its last commit, where its output segment starts, and restoring it before
//! its first record. The same for every kind of task and both modes.

use std::collections::BTreeMap;

/// A task as its driver hosts it.
pub struct Hosted<T> {
    /// The task (its processor and what it checkpoints).
    pub task: T,
    /// The next input offset: everything below was applied.
    pub position: i64,
    /// The input position where the current output segment started (object
    /// names derive from it, so a re-run writes the same names).
    pub segment_start: i64,
    /// Changed since its last commit.
    pub dirty: bool,
    /// The input's log end was checked against `position` (see [`Hosted::admit`]).
    pub log_checked: bool,
}

impl<T> Hosted<T> {
    /// A task restored at `position`.
    pub fn new(task: T, position: i64) -> Self {
        Hosted {
            task,
            position,
            segment_start: position,
            dirty: false,
            log_checked: false,
        }
    }

    /// Admits the record at `offset`: false when it lies below the position
    /// (applied before a crash or a rebalance: a re-delivery), else the
    /// position moves past it and the task is dirty.
    pub fn admit(&mut self, offset: i64) -> bool {
        if offset < self.position {
            return false;
        }
        self.position = offset + 1;
        self.dirty = true;
        true
    }

    /// Once a commit took its changes (sealed; it may still be landing):
    /// clean, and the next segment starts at the position.
    pub fn committed(&mut self) {
        self.dirty = false;
        self.segment_start = self.position;
    }
}

/// The tasks a driver hosts, by id; each is restored on its first use.
pub struct Tasks<K, T> {
    tasks: BTreeMap<K, Hosted<T>>,
}

impl<K: Ord + Copy, T> Default for Tasks<K, T> {
    fn default() -> Self {
        Tasks {
            tasks: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Copy, T> Tasks<K, T> {
    /// The task `id`, restored by `restore` first if it is not hosted yet.
    pub fn get_or_restore<E>(
        &mut self,
        id: K,
        restore: impl FnOnce() -> Result<Hosted<T>, E>,
    ) -> Result<&mut Hosted<T>, E> {
        match self.tasks.entry(id) {
            std::collections::btree_map::Entry::Occupied(hosted) => Ok(hosted.into_mut()),
            std::collections::btree_map::Entry::Vacant(slot) => Ok(slot.insert(restore()?)),
        }
    }

    /// The task `id`, if hosted.
    pub fn get(&self, id: K) -> Option<&Hosted<T>> {
        self.tasks.get(&id)
    }

    /// The task `id`, if hosted, mutably.
    pub fn get_mut(&mut self, id: K) -> Option<&mut Hosted<T>> {
        self.tasks.get_mut(&id)
    }

    /// Stops hosting the tasks for which `released` is true.
    pub fn release(&mut self, mut released: impl FnMut(K, &T) -> bool) {
        self.tasks.retain(|id, t| !released(*id, &t.task));
    }

    /// Every hosted task, by id.
    pub fn iter(&self) -> impl Iterator<Item = (K, &Hosted<T>)> {
        self.tasks.iter().map(|(k, t)| (*k, t))
    }

    /// Every hosted task, by id, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (K, &mut Hosted<T>)> {
        self.tasks.iter_mut().map(|(k, t)| (*k, t))
    }

    /// Number of hosted tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when no task is hosted.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_only_new_records_and_restores_once() {
        let mut tasks: Tasks<u32, &str> = Tasks::default();
        let mut restored = 0;
        for _ in 0..2 {
            tasks
                .get_or_restore(3, || {
                    restored += 1;
                    Ok::<_, ()>(Hosted::new("t", 10))
                })
                .unwrap();
        }
        assert_eq!(restored, 1);
        let t = tasks.get_mut(3).unwrap();
        assert!(!t.admit(9), "below the position: a re-delivery");
        assert!(!t.dirty);
        assert!(t.admit(12));
        assert_eq!((t.position, t.dirty, t.segment_start), (13, true, 10));
        t.committed();
        assert_eq!((t.dirty, t.segment_start), (false, 13));
        tasks.release(|id, _| id == 3);
        assert!(tasks.is_empty());
    }
}
