//! Stores keep sled as the store of record: they survive commit + reopen
//! reading only what they need, work within a tiny cache (eviction and
//! re-reads), split pages, drop whole windows, refuse another format, and
//! their changes are the changelog from which a keyspace is restored.

use neonblue_state::{
    CommitBatch, KeyValueStore, StateDb, StateError, Store, VersionedStore, WindowStore,
};

fn commit(db: &StateDb, stores: &mut [(&neonblue_state::StoreTree, &mut dyn Store)], round: u64) {
    let mut batch = CommitBatch::default();
    for (tree, store) in stores.iter_mut() {
        batch.add_store(tree, *store);
    }
    batch.set_meta("checkpoint", Some(round.to_be_bytes().to_vec()));
    db.commit(batch).unwrap();
}

#[test]
fn stores_round_trip_through_commits_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = StateDb::open(dir.path(), 8 << 20).unwrap();
        let (t_kv, t_ver, t_win) = (
            db.tree("ns", "kv").unwrap(),
            db.tree("ns", "ver").unwrap(),
            db.tree("ns", "win").unwrap(),
        );
        let mut kv: KeyValueStore<String, u64> = KeyValueStore::load("kv", &t_kv).unwrap();
        let mut ver: VersionedStore<String, u32> = VersionedStore::load("ver", &t_ver).unwrap();
        let mut win: WindowStore<String, u64> = WindowStore::load("win", &t_win).unwrap();
        for round in 0..40u64 {
            kv.insert(format!("k{}", round % 5), round).unwrap();
            ver.upsert("u".into(), (round % 7) as i64 * 10, round as u32)
                .unwrap();
            *win.upsert_with(100, format!("g{}", round % 3), || 0)
                .unwrap() += 1;
            win.insert_if_absent(200, format!("x{round}"), round)
                .unwrap();
            if round == 30 {
                kv.remove(&"k0".to_string()).unwrap();
                assert!(win.pop_before(150).unwrap().is_some()); // close window 100
            }
            commit(
                &db,
                &mut [(&t_kv, &mut kv), (&t_ver, &mut ver), (&t_win, &mut win)],
                round,
            );
        }
    }
    let db = StateDb::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(
        db.get_meta("checkpoint").unwrap(),
        Some(39u64.to_be_bytes().to_vec())
    );
    let mut kv: KeyValueStore<String, u64> =
        KeyValueStore::load("kv", &db.tree("ns", "kv").unwrap()).unwrap();
    assert_eq!(kv.entries().unwrap().len(), 5);
    assert_eq!(kv.get(&"k0".to_string()).unwrap(), Some(&35));
    assert_eq!(kv.get(&"k4".to_string()).unwrap(), Some(&39));
    let mut ver: VersionedStore<String, u32> =
        VersionedStore::load("ver", &db.tree("ns", "ver").unwrap()).unwrap();
    assert_eq!(ver.versions(&"u".into()).unwrap().unwrap().len(), 7);
    assert_eq!(ver.as_of(&"u".into(), 25).unwrap(), Some(&(20, 37)));
    assert!(ver.as_of(&"u".into(), -1).unwrap().is_none());
    let mut win: WindowStore<String, u64> =
        WindowStore::load("win", &db.tree("ns", "win").unwrap()).unwrap();
    assert_eq!(
        win.window_count(),
        2,
        "window 100 was reopened after closing, 200 stays"
    );
    assert_eq!(win.get(200, &"x39".to_string()).unwrap(), Some(&39));
    let (start, entries) = win.pop_before(150).unwrap().unwrap();
    assert_eq!(start, 100);
    assert_eq!(
        entries.iter().map(|e| e.1).sum::<u64>(),
        9,
        "rounds 31..39 after the close"
    );
    let (_, entries) = win.pop_before(i64::MAX).unwrap().unwrap();
    assert_eq!(entries.len(), 40);
    assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "key order");
}

#[test]
fn a_tiny_cache_evicts_and_reads_back_many_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 64 << 10).unwrap(); // 64 KiB
    let tree = db.tree("ns", "kv").unwrap();
    let mut kv: KeyValueStore<u64, String> = KeyValueStore::load("kv", &tree).unwrap();
    let n = 20_000u64;
    for i in 0..n {
        // A scattered order splits pages everywhere.
        let k = i.wrapping_mul(0x9E37_79B9) % 1_000_003;
        kv.insert(k, format!("value-{k}")).unwrap();
        if i % 2_000 == 1_999 {
            commit(&db, &mut [(&tree, &mut kv)], i);
        }
    }
    for i in (0..n).step_by(97) {
        let k = i.wrapping_mul(0x9E37_79B9) % 1_000_003;
        assert_eq!(kv.get(&k).unwrap(), Some(&format!("value-{k}")));
    }
    // (Checked after a read: the pages of the last commit become evictable
    // once it has landed, and the next access evicts them.)
    assert!(
        db.budget().used() <= db.budget().limit() * 2,
        "the cache stays near its budget: {} used",
        db.budget().used()
    );
    drop(kv);
    let mut again: KeyValueStore<u64, String> = KeyValueStore::load("kv", &tree).unwrap();
    let all = again.entries().unwrap();
    assert_eq!(all.len() as u64, n);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn reading_a_clean_page_works_while_dirty_pages_overfill_the_cache() {
    // The page just read is the only one that could be evicted: it must stay
    // until the read is done (found by the crash test with a tiny cache).
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 16 << 10).unwrap(); // 16 KiB
    let tree = db.tree("ns", "kv").unwrap();
    let mut kv: KeyValueStore<u64, String> = KeyValueStore::load("kv", &tree).unwrap();
    for k in 0..1_000u64 {
        kv.insert(k, format!("committed-{k}")).unwrap();
    }
    commit(&db, &mut [(&tree, &mut kv)], 1);
    for k in 1_000_000..1_004_000u64 {
        kv.insert(k, format!("dirty-{k}")).unwrap();
    }
    assert!(db.budget().over(), "dirty pages fill the cache");
    for k in (0..1_000u64).step_by(7) {
        assert_eq!(kv.get(&k).unwrap(), Some(&format!("committed-{k}")));
    }
}

#[test]
fn pages_a_commit_in_flight_took_are_not_read_back_before_it_lands() {
    // A driver that commits in the background takes a segment's changes,
    // then goes on processing while the batch is written. The cache must not
    // drop those pages and read them back from sled before the batch is
    // there: that would read the state before the segment.
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 64 << 10).unwrap(); // 64 KiB
    let tree = db.tree("ns", "kv").unwrap();
    let mut kv: KeyValueStore<u64, String> = KeyValueStore::load("kv", &tree).unwrap();
    for k in 0..2_000u64 {
        kv.insert(k, format!("old-{k}")).unwrap();
    }
    commit(&db, &mut [(&tree, &mut kv)], 1);
    for k in 0..2_000u64 {
        *kv.get_mut(&k).unwrap().unwrap() = format!("new-{k}");
    }
    let mut in_flight = CommitBatch::default();
    in_flight.add_store(&tree, &mut kv);
    // Processing goes on and reads far more than the cache holds.
    for k in 1_000_000..1_020_000u64 {
        kv.insert(k, format!("next-{k}")).unwrap();
        kv.get(&(k % 2_000)).unwrap();
    }
    assert!(db.budget().over(), "the cache is over its budget");
    for k in (0..2_000u64).step_by(13) {
        assert_eq!(kv.get(&k).unwrap(), Some(&format!("new-{k}")), "key {k}");
    }
    in_flight.set_meta("checkpoint", Some(2u64.to_be_bytes().to_vec()));
    db.commit(in_flight).unwrap();
    // Landed: those pages may go now, and read back they are the new state.
    commit(&db, &mut [(&tree, &mut kv)], 3);
    for k in (0..2_000u64).step_by(13) {
        assert_eq!(kv.get(&k).unwrap(), Some(&format!("new-{k}")), "key {k}");
    }
    assert!(
        db.budget().used() <= db.budget().limit() * 2,
        "evictable again: {} used",
        db.budget().used()
    );
}

#[test]
fn dropping_a_window_removes_its_pages_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 8 << 20).unwrap();
    let tree = db.tree("ns", "seen").unwrap();
    let mut seen: WindowStore<String, ()> = WindowStore::load("seen", &tree).unwrap();
    for day in [0i64, 86_400, 172_800] {
        for i in 0..3_000 {
            assert!(seen.insert_if_absent(day, format!("e{i}"), ()).unwrap());
        }
    }
    assert!(!seen.insert_if_absent(0, "e7".into(), ()).unwrap());
    commit(&db, &mut [(&tree, &mut seen)], 1);
    assert_eq!(seen.drop_before(86_400), Some(0));
    assert_eq!(seen.drop_before(86_400), None);
    let mut changes = Vec::new();
    seen.take_changes(&mut changes);
    assert!(
        changes.iter().all(|c| c.value.is_none()),
        "dropping writes only tombstones"
    );
    assert!(changes.len() >= 2 * (3_000 / neonblue_state::paged::PAGE_ENTRIES));
    let mut batch = CommitBatch::default();
    batch.add_store(&tree, &mut seen); // already taken: nothing more
    db.commit(batch).unwrap();
    db.restore(&tree, changes).unwrap();
    let mut again: WindowStore<String, ()> = WindowStore::load("seen", &tree).unwrap();
    assert_eq!(again.window_count(), 2);
    assert!(again.contains_in_any(&"e2999".to_string()).unwrap());
}

#[test]
fn dedup_in_one_search_keeps_and_writes_what_a_lookup_then_an_insert_did() {
    // `insert_unless_in_any` searches its own window once, where a lookup
    // in every window and then an insert searched it twice: the answers,
    // the entries, the cache weights (which decide evictions and early
    // commits) and every commit's changes (pages whole or as deltas,
    // splits) must stay the same.
    let (dir_before, dir_now) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let db_before = StateDb::open(dir_before.path(), 8 << 20).unwrap();
    let db_now = StateDb::open(dir_now.path(), 8 << 20).unwrap();
    let (t_before, t_now) = (
        db_before.tree("ns", "seen").unwrap(),
        db_now.tree("ns", "seen").unwrap(),
    );
    let weights = |db: &StateDb| (db.budget().used(), db.budget().dirty());
    let mut before: WindowStore<String, ()> = WindowStore::load("seen", &t_before).unwrap();
    let mut now: WindowStore<String, ()> = WindowStore::load("seen", &t_now).unwrap();
    let changes = |store: &mut WindowStore<String, ()>| {
        let mut out = Vec::new();
        store.take_changes(&mut out);
        let mut records: Vec<_> = out.into_iter().map(|c| (c.key, c.value)).collect();
        records.sort();
        records
    };
    let (mut x, mut duplicates, mut written) = (7u64, 0, 0);
    for i in 0..30_000u64 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let id = format!("e{}", (x >> 33) % 12_000);
        let day = (i / 6_000 + (x >> 20) % 3) as i64;
        let expected = !before.contains_in_any(&id).unwrap();
        if expected {
            before.upsert_with(day, id.clone(), || ()).unwrap();
        }
        assert_eq!(
            now.insert_unless_in_any(day, id, ()).unwrap(),
            expected,
            "record {i}"
        );
        assert_eq!(weights(&db_before), weights(&db_now), "record {i}");
        duplicates += u64::from(!expected);
        if i % 2_500 == 2_499 {
            let (a, b) = (changes(&mut before), changes(&mut now));
            assert_eq!(a, b, "changes after record {i}");
            written += a.len();
            let expired = (i / 6_000) as i64 - 1;
            assert_eq!(before.drop_before(expired), now.drop_before(expired));
        }
    }
    assert!(duplicates > 1_000, "{duplicates} duplicates");
    assert!(written > 100, "{written} records written");
    assert_eq!(before.entry_count().unwrap(), now.entry_count().unwrap());
}

#[test]
fn a_duplicate_leaves_its_window_clean() {
    // Nothing changes, so nothing is written: with a page of a few keys and
    // with a full one (whose inserts split it).
    for n in [10, neonblue_state::paged::PAGE_ENTRIES] {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), 8 << 20).unwrap();
        let tree = db.tree("ns", "seen").unwrap();
        let mut seen: WindowStore<String, ()> = WindowStore::load("seen", &tree).unwrap();
        for i in 0..n {
            assert!(seen
                .insert_unless_in_any(7, format!("e{i:05}"), ())
                .unwrap());
        }
        commit(&db, &mut [(&tree, &mut seen)], 1);
        for i in 0..n {
            assert!(!seen
                .insert_unless_in_any(7, format!("e{i:05}"), ())
                .unwrap());
            assert!(!seen.insert_if_absent(7, format!("e{i:05}"), ()).unwrap());
        }
        let mut changes = Vec::new();
        seen.take_changes(&mut changes);
        assert!(changes.is_empty(), "{n} keys: {} records", changes.len());
        assert!(seen.insert_unless_in_any(7, "e99999".into(), ()).unwrap());
        seen.take_changes(&mut changes);
        assert!(!changes.is_empty(), "{n} keys: a new key is written");
    }
}

#[test]
fn taking_the_start_of_a_window_leaves_the_rest_in_place_through_commits() {
    // Deadlines: a window holds many, a few at its start are due at a time.
    let dir = tempfile::tempdir().unwrap();
    let tree_of = |db: &StateDb| db.tree("ns", "due").unwrap();
    let db = StateDb::open(dir.path(), 8 << 20).unwrap();
    let tree = tree_of(&db);
    let mut due: WindowStore<(u64, String), ()> = WindowStore::load("due", &tree).unwrap();
    for w in [60i64, 120] {
        for i in 0..5_000u64 {
            due.insert_if_absent(w, (w as u64 * 100_000 + i, format!("k{i}")), ())
                .unwrap();
        }
    }
    commit(&db, &mut [(&tree, &mut due)], 1);
    // Nothing due: nothing taken, nothing changed.
    assert!(due
        .take_first_while(|d| d.0 < 6_000_000)
        .unwrap()
        .is_empty());
    // A prefix inside the first page, then one across pages.
    let first = due.take_first_while(|d| d.0 < 6_000_010).unwrap();
    assert_eq!(first.len(), 10);
    assert_eq!(first[9].0, (6_000_009, "k9".to_string()));
    commit(&db, &mut [(&tree, &mut due)], 2);
    let more = due.take_first_while(|d| d.0 < 6_003_000).unwrap();
    assert_eq!(more.len(), 2_990);
    assert!(more.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
    commit(&db, &mut [(&tree, &mut due)], 3);
    drop((due, tree, db));

    let db = StateDb::open(dir.path(), 8 << 20).unwrap();
    let tree = tree_of(&db);
    let mut due: WindowStore<(u64, String), ()> = WindowStore::load("due", &tree).unwrap();
    assert_eq!(due.window_starts(), vec![60, 120]);
    // The whole rest of the first window, and nothing of the second.
    let rest = due.take_first_while(|d| d.0 < 7_000_000).unwrap();
    assert_eq!(rest.len(), 2_000);
    assert_eq!(rest[0].0, (6_003_000, "k3000".to_string()));
    assert_eq!(due.window_starts(), vec![120]);
    assert_eq!(due.entry_count().unwrap(), 5_000);
}

#[test]
fn changes_replayed_as_changelog_restore_an_equal_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 8 << 20).unwrap();
    let source = db.tree("source", "kv").unwrap();
    let mut kv: KeyValueStore<String, u64> = KeyValueStore::load("kv", &source).unwrap();
    let mut log = Vec::new();
    for i in 0..1_000u64 {
        kv.insert(format!("k{}", i % 400), i).unwrap();
        if i == 600 {
            kv.remove(&"k1".to_string()).unwrap();
        }
        if i % 100 == 99 {
            kv.take_changes(&mut log);
        }
    }
    let tree = db.tree("restored", "kv").unwrap();
    db.restore(&tree, log).unwrap();
    let mut restored: KeyValueStore<String, u64> = KeyValueStore::load("kv", &tree).unwrap();
    let got = restored.entries().unwrap();
    assert_eq!(got.len(), 400);
    assert_eq!(restored.get(&"k1".to_string()).unwrap(), Some(&801));
    assert_eq!(restored.get(&"k399".to_string()).unwrap(), Some(&799));
    assert_eq!(restored.get(&"k199".to_string()).unwrap(), Some(&999));
}

#[test]
fn another_format_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What the previous layout looked like: one sled tree per store.
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("task-0000/assignments")
            .unwrap()
            .insert("k", "v")
            .unwrap();
        db.flush().unwrap();
    }
    let err = match StateDb::open(dir.path(), 8 << 20) {
        Err(e @ StateError::Format { .. }) => e.to_string(),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an older state directory was opened"),
    };
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    assert!(
        err.contains("older neonblue") && err.contains("delete it"),
        "{err}"
    );
}

#[test]
fn inspect_reads_without_writing_and_names_a_held_directory() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = StateDb::open(dir.path(), 8 << 20).unwrap();
        let tree = db.tree("task-1", "win").unwrap();
        let mut win: WindowStore<String, u64> = WindowStore::load("win", &tree).unwrap();
        for i in 0..600u64 {
            win.insert_if_absent(((i % 3) * 100) as i64, format!("k{i:04}"), i)
                .unwrap();
        }
        commit(&db, &mut [(&tree, &mut win)], 1);
        // Held by a running instance: refused at once, never waited on.
        assert!(matches!(
            StateDb::inspect(dir.path(), 8 << 20),
            Err(StateError::InUse { .. })
        ));
    }
    let db = StateDb::inspect(dir.path(), 8 << 20).unwrap();
    let spaces = db.keyspaces().unwrap();
    assert_eq!(spaces.len(), 1);
    assert_eq!(
        (spaces[0].ns.as_str(), spaces[0].store.as_str()),
        ("task-1", "win")
    );
    let tree = db.tree("task-1", "win").unwrap();
    assert!(tree.usage().unwrap().bytes > 600 * 8);
    let mut win: WindowStore<String, u64> = WindowStore::load("win", &tree).unwrap();
    assert_eq!(win.window_starts(), [0, 100, 200]);
    assert_eq!(win.entry_count().unwrap(), 600);
    // Nothing can be written: no new keyspace, no metadata, no commit.
    assert!(matches!(
        db.tree("task-2", "win"),
        Err(StateError::ReadOnly { .. })
    ));
    assert!(matches!(
        db.put_meta_durable("x", Some(b"1")),
        Err(StateError::ReadOnly { .. })
    ));
    assert!(matches!(
        db.commit(CommitBatch::default()),
        Err(StateError::ReadOnly { .. })
    ));
    assert!(tree.clear().is_err());
    drop((win, tree, db));

    // Missing and foreign directories are named, and left as they were.
    let missing = dir.path().join("missing");
    let err = StateDb::inspect(&missing, 8 << 20)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("missing") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!missing.exists());
    let foreign = tempfile::tempdir().unwrap();
    drop(sled::open(foreign.path()).unwrap());
    let err = StateDb::inspect(foreign.path(), 8 << 20)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("foreign"), "{err}");
}

/// Opening must fail with a format error naming the directory.
fn refused(dir: &std::path::Path) -> String {
    match StateDb::open(dir, 8 << 20) {
        Err(e @ StateError::Format { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&dir.display().to_string()), "{text}");
            text
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a damaged state directory was opened"),
    }
}

#[test]
fn a_database_that_lost_committed_state_is_refused() {
    // sled keeps the longest valid prefix of a damaged log: without the
    // generation file these would open as an older or an empty database.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = StateDb::open(dir.path(), 8 << 20).unwrap();
        let tree = db.tree("task-0000", "kv").unwrap();
        let mut kv: KeyValueStore<u64, String> = KeyValueStore::load("kv", &tree).unwrap();
        for round in 0..20u64 {
            for i in 0..200 {
                kv.insert(round * 1000 + i, "x".repeat(100)).unwrap();
            }
            commit(&db, &mut [(&tree, &mut kv)], round);
        }
    }
    let log = dir.path().join("db");
    let len = std::fs::metadata(&log).unwrap().len();
    // The whole directory: opening a damaged log may leave sled files
    // (snapshots) that describe the damaged state.
    let backup = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), backup.path());

    // Truncated: the last commits are gone.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = refused(dir.path());
    assert!(err.contains("lost committed state"), "{err}");

    // Overwritten with garbage: sled finds nothing valid.
    let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&log, garbage).unwrap();
    let err = refused(dir.path());
    assert!(
        err.contains("lost committed state") || err.contains("not a readable state database"),
        "{err}"
    );

    // Intact again: opens, with every commit.
    std::fs::remove_dir_all(dir.path()).unwrap();
    copy_dir(backup.path(), dir.path());
    StateDb::open(dir.path(), 8 << 20).unwrap();
}

#[test]
fn a_snapshot_left_unfinished_by_a_kill_is_discarded_and_every_commit_kept() {
    // A kill while sled writes its snapshot leaves `snap.<lsn>.generating`
    // cut short; sled 0.34 would open it as the newest snapshot and fail.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = StateDb::open(dir.path(), 8 << 20).unwrap();
        let tree = db.tree("task-0000", "kv").unwrap();
        let mut kv: KeyValueStore<u64, String> = KeyValueStore::load("kv", &tree).unwrap();
        for round in 0..10u64 {
            kv.insert(round, format!("v{round}")).unwrap();
            commit(&db, &mut [(&tree, &mut kv)], round);
        }
    }
    for name in [
        "snap.7FFFFFFFFFFFFFFF.generating",
        "snap.0000000000000000.generating",
    ] {
        std::fs::write(dir.path().join(name), b"cut").unwrap();
    }
    // `status` reads such a directory too, then a restart opens it.
    drop(StateDb::inspect(dir.path(), 8 << 20).unwrap());
    std::fs::write(dir.path().join("snap.7FFFFFFFFFFFFFFF.generating"), b"cut").unwrap();
    let db = StateDb::open(dir.path(), 8 << 20).unwrap();
    let tree = db.tree("task-0000", "kv").unwrap();
    let mut kv: KeyValueStore<u64, String> = KeyValueStore::load("kv", &tree).unwrap();
    for round in 0..10u64 {
        assert_eq!(kv.get(&round).unwrap(), Some(&format!("v{round}")));
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".generating")),
        "{names:?}"
    );
}

/// Copies the files of `from` (recursively) into `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_log_cut_short_anywhere_is_an_error_or_an_earlier_state_never_a_panic() {
    // sled 0.34 panics while recovering some cut-short logs; opening turns
    // that into an error naming the directory.
    let src = tempfile::tempdir().unwrap();
    {
        let db = StateDb::open(src.path(), 1 << 20).unwrap();
        let tree = db.tree("ns", "kv").unwrap();
        let mut kv: KeyValueStore<u64, String> = KeyValueStore::load("kv", &tree).unwrap();
        for round in 0..20u64 {
            for k in 0..500u64 {
                kv.insert(round * 1_000 + k, format!("value-{round}-{k}"))
                    .unwrap();
            }
            commit(&db, &mut [(&tree, &mut kv)], round);
        }
    }
    let log = std::fs::read(src.path().join("db")).unwrap();
    for cut in 1..200 {
        let dir = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(src.path()).unwrap() {
            let e = e.unwrap();
            if e.path().is_file() {
                std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
            }
        }
        let len = log.len() * cut / 200;
        std::fs::write(dir.path().join("db"), &log[..len]).unwrap();
        let opened = std::panic::catch_unwind(|| StateDb::open(dir.path(), 1 << 20).map(|_| ()));
        match opened {
            Ok(Ok(())) => {}
            Ok(Err(e)) => assert!(
                e.to_string().contains(&dir.path().display().to_string()),
                "{e}"
            ),
            Err(_) => panic!("opening a log cut at {len} of {} bytes panicked", log.len()),
        }
    }
}

#[test]
fn a_page_too_large_for_one_record_is_split_at_the_commit() {
    use neonblue_state::paged::{PAGE_BYTES, PAGE_ENTRIES};
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 64 << 20).unwrap();
    let tree = db.tree("ns", "big").unwrap();
    let mut store: KeyValueStore<u32, Vec<u8>> = KeyValueStore::load("big", &tree).unwrap();
    // Fewer entries than a page holds, together four times a record's limit.
    let n = (PAGE_ENTRIES / 2) as u32;
    let value_len = 4 * PAGE_BYTES / n as usize;
    for k in 0..n {
        store.insert(k, vec![k as u8; value_len]).unwrap();
    }
    let mut changes = Vec::new();
    store.take_changes(&mut changes);
    let pages: Vec<usize> = changes
        .iter()
        .filter(|c| c.key[0] == b'p')
        .map(|c| c.value.as_ref().map_or(0, Vec::len))
        .collect();
    assert!(pages.len() >= 4, "split into {} pages", pages.len());
    assert!(
        pages.iter().all(|len| *len <= PAGE_BYTES),
        "page records of {pages:?} bytes"
    );
    db.restore(&tree, changes).unwrap();
    let mut again: KeyValueStore<u32, Vec<u8>> = KeyValueStore::load("big", &tree).unwrap();
    let entries = again.entries().unwrap();
    assert_eq!(entries.len(), n as usize);
    assert!(entries
        .iter()
        .enumerate()
        .all(|(i, (k, v))| *k == i as u32 && *v == vec![i as u8; value_len]));
}

#[test]
fn a_commit_writes_a_few_changed_entries_as_a_delta_and_a_page_whole_once_they_grow() {
    use neonblue_state::paged::DELTA_SHARE;
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 64 << 20).unwrap();
    let tree = db.tree("ns", "kv").unwrap();
    let mut kv: KeyValueStore<u32, String> = KeyValueStore::load("kv", &tree).unwrap();
    let n = 400u32;
    for k in 0..n {
        kv.insert(k, format!("value-{k:04}")).unwrap();
    }
    let written = |kv: &mut KeyValueStore<u32, String>| {
        let mut batch = CommitBatch::default();
        let changes = batch.add_store(&tree, kv).to_vec();
        db.commit(batch).unwrap();
        let kinds: Vec<(u8, bool)> = changes
            .iter()
            .map(|c| (c.key[0], c.value.is_some()))
            .collect();
        (kinds, changes)
    };
    let (first, mut log) = written(&mut kv);
    assert!(first.contains(&(b'p', true)), "a new page is written whole");
    assert!(
        !first.iter().any(|(kind, _)| *kind == b'd'),
        "a page without a delta deletes none: {first:?}"
    );

    // One changed, one removed, one added: a delta, not the page.
    kv.insert(7, "seven".into()).unwrap();
    kv.remove(&8).unwrap();
    kv.insert(1000, "new".into()).unwrap();
    let (second, changes) = written(&mut kv);
    log.extend(changes);
    assert_eq!(second, vec![(b'd', true)], "only the delta is written");

    // The page read back is page + delta.
    let mut reopened: KeyValueStore<u32, String> = KeyValueStore::load("kv", &tree).unwrap();
    assert_eq!(reopened.get(&7).unwrap().map(String::as_str), Some("seven"));
    assert_eq!(reopened.get(&8).unwrap(), None);
    assert_eq!(
        reopened.get(&1000).unwrap().map(String::as_str),
        Some("new")
    );
    assert_eq!(reopened.entries().unwrap().len(), n as usize);

    // Changes past a quarter of the page: written whole, the delta deleted.
    for k in 0..n / DELTA_SHARE as u32 + 1 {
        *reopened.get_mut(&(k * 2 + 1)).unwrap().unwrap() = format!("changed-{k}");
    }
    let (third, changes) = written(&mut reopened);
    log.extend(changes);
    assert!(
        third.contains(&(b'p', true)) && third.contains(&(b'd', false)),
        "{third:?}"
    );

    // The changelog (pages, deltas, tombstones) restores the same entries.
    let expected = reopened.entries().unwrap();
    let other = db.tree("ns2", "kv").unwrap();
    db.restore(&other, log).unwrap();
    let mut restored: KeyValueStore<u32, String> = KeyValueStore::load("kv", &other).unwrap();
    assert_eq!(restored.entries().unwrap(), expected);
}

#[test]
fn a_page_is_stored_as_its_entries_in_key_order() {
    // The stored format (since `neonblue-state/4`): a page record is the bincode
    // of `Vec<(K, V)>` in key order, whatever the in-memory structure.
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 8 << 20).unwrap();
    let tree = db.tree("ns", "kv").unwrap();
    let mut kv: KeyValueStore<String, u64> = KeyValueStore::load("kv", &tree).unwrap();
    for i in [5u64, 1, 9, 3, 7] {
        kv.insert(format!("k{i}"), i * 10).unwrap();
    }
    let mut changes = Vec::new();
    kv.take_changes(&mut changes);
    let pages: Vec<Vec<(String, u64)>> = changes
        .iter()
        .filter(|c| c.key.first() == Some(&b'p'))
        .map(|c| neonblue_state::decode(c.value.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(
        pages,
        vec![[1u64, 3, 5, 7, 9]
            .iter()
            .map(|i| (format!("k{i}"), i * 10))
            .collect::<Vec<_>>()]
    );
}

#[test]
fn a_dropped_store_gives_its_pages_back_to_the_instance_budget() {
    // A task given up in a rebalance drops its stores; the instance's
    // budget must no longer count their pages, or the cache shrinks for
    // every task left with each rebalance.
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 64 << 20).unwrap();
    let tree = db.tree("ns", "kv").unwrap();
    let mut kv: KeyValueStore<u64, String> = KeyValueStore::load("kv", &tree).unwrap();
    for k in 0..5_000u64 {
        kv.insert(k, format!("value-{k}")).unwrap();
    }
    commit(&db, &mut [(&tree, &mut kv)], 1);
    for k in 5_000..6_000u64 {
        kv.insert(k, format!("value-{k}")).unwrap(); // dirty, never committed
    }
    assert!(db.budget().used() > 0 && db.budget().dirty() > 0);
    drop(kv);
    assert_eq!((db.budget().used(), db.budget().dirty()), (0, 0));

    // Read back, then dropped clean.
    let mut again: KeyValueStore<u64, String> = KeyValueStore::load("kv", &tree).unwrap();
    assert_eq!(again.get(&4_999).unwrap(), Some(&"value-4999".to_string()));
    assert_eq!(
        again.get(&5_000).unwrap(),
        None,
        "uncommitted changes are gone"
    );
    assert!(db.budget().used() > 0);
    drop(again);
    assert_eq!((db.budget().used(), db.budget().dirty()), (0, 0));
}
