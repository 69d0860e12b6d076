//! Stores survive commit + reopen; changes are the changelog; restore rebuilds a tree.

use neonblue_state::{CommitBatch, KeyValueStore, StateDb, Store, VersionedStore, WindowStore};

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
        let mut kv: KeyValueStore<String, u64> = KeyValueStore::new("kv");
        let mut ver: VersionedStore<String, u32> = VersionedStore::new("ver");
        let mut win: WindowStore<String, u64> = WindowStore::new("win");
        // Many commits so the window store compacts its chunks.
        for round in 0..40u64 {
            kv.insert(format!("k{}", round % 5), round);
            ver.upsert("u".into(), (round % 7) as i64 * 10, round as u32);
            *win.upsert_with(100, &format!("g{}", round % 3), || 0) += 1;
            win.insert_if_absent(200, format!("x{round}"), round);
            if round == 30 {
                kv.remove(&"k0".to_string());
                assert!(win.pop_before(150).is_some()); // close window 100
            }
            let mut batch = CommitBatch::default();
            batch.add_store(&t_kv, &mut kv);
            batch.add_store(&t_ver, &mut ver);
            batch.add_store(&t_win, &mut win);
            batch.set_meta("checkpoint", Some(round.to_be_bytes().to_vec()));
            db.commit(batch).unwrap();
        }
    }
    let db = StateDb::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(
        db.get_meta("checkpoint").unwrap(),
        Some(39u64.to_be_bytes().to_vec())
    );
    let kv: KeyValueStore<String, u64> =
        KeyValueStore::load("kv", &db.tree("ns", "kv").unwrap()).unwrap();
    assert_eq!(kv.len(), 5);
    assert_eq!(kv.get(&"k0".to_string()), Some(&35));
    assert_eq!(kv.get(&"k4".to_string()), Some(&39));
    let ver: VersionedStore<String, u32> =
        VersionedStore::load("ver", &db.tree("ns", "ver").unwrap()).unwrap();
    assert_eq!(ver.versions(&"u".into()).unwrap().len(), 7);
    assert_eq!(ver.as_of(&"u".into(), 25).unwrap(), &(20, 37));
    assert!(ver.as_of(&"u".into(), -1).is_none());
    let mut win: WindowStore<String, u64> =
        WindowStore::load("win", &db.tree("ns", "win").unwrap()).unwrap();
    assert_eq!(
        win.window_count(),
        2,
        "window 100 was reopened after closing, 200 stays"
    );
    assert_eq!(win.get(200, &"x39".to_string()), Some(&39));
    let (start, entries) = win.pop_before(150).unwrap();
    assert_eq!(start, 100);
    assert_eq!(
        entries.iter().map(|e| e.1).sum::<u64>(),
        9,
        "rounds 31..39 after the close"
    );
    let (_, entries) = win.pop_before(i64::MAX).unwrap();
    assert_eq!(entries.len(), 40);
}

#[test]
fn changes_replayed_as_changelog_restore_an_equal_tree() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 8 << 20).unwrap();
    let mut kv: KeyValueStore<String, u64> = KeyValueStore::new("kv");
    let mut log = Vec::new();
    for i in 0..10u64 {
        kv.insert(format!("k{}", i % 4), i);
        if i == 6 {
            kv.remove(&"k1".to_string());
        }
        kv.take_changes(&mut log);
    }
    let tree = db.tree("restored", "kv").unwrap();
    assert_eq!(db.restore(&tree, log).unwrap(), 10 + 1);
    let restored: KeyValueStore<String, u64> = KeyValueStore::load("kv", &tree).unwrap();
    let mut got: Vec<(String, u64)> = restored.iter().map(|(k, v)| (k.clone(), *v)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("k0".into(), 8),
            ("k1".into(), 9),
            ("k2".into(), 6),
            ("k3".into(), 7)
        ]
    );
}
