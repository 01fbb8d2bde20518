//! The safe wrapper against the real DPDK (EAL without hugepages, no devices): mbufs free
//! themselves, rings carry mbufs between ends and free what is left, pools count, and a
//! pool dropped while an mbuf is out is leaked with the EAL rather than freed under it.
//! One test function: the EAL can be initialised once per process.

use tutti_dataplane::io::{PacketBuf, RingRx, RingTx};
use tutti_dpdk::{leaked_pools, mbuf_ring, Eal, Mempool};

#[test]
fn mbufs_rings_and_pools() {
    let eal = Eal::init(&[
        "--no-huge".into(),
        "--no-pci".into(),
        "-m".into(),
        "128".into(),
        "-l".into(),
        "0".into(),
        format!("--file-prefix=tuttiwrap{}", std::process::id()),
        "--log-level=lib.eal:warning".into(),
    ])
    .expect("EAL without hugepages");
    let pool = Mempool::new(&eal, "wrap_test", 1023, 0, 2048 + 128, -1).expect("pool");
    assert_eq!(pool.in_use(), 0);

    // An mbuf grows within its room and frees itself on drop.
    let mut m = pool.alloc().expect("mbuf");
    assert!(m.capacity() >= 2048);
    assert!(m.set_len(100));
    m.data_mut().fill(7);
    assert_eq!(m.data(), &[7u8; 100][..]);
    assert!(!m.set_len(m.capacity() + 1));
    assert_eq!(pool.in_use(), 1);
    drop(m);
    assert_eq!(pool.in_use(), 0);

    // A ring of 4 holds 3; the 4th push gives the mbuf back; pop is FIFO.
    let (mut tx, mut rx) = mbuf_ring(&eal, "wrap_ring", 4, -1).expect("ring");
    for i in 0..3u8 {
        let mut m = pool.alloc().unwrap();
        assert!(m.set_len(1));
        m.data_mut()[0] = i;
        assert!(tx.push(m).is_ok());
    }
    let extra = pool.alloc().unwrap();
    let back = tx.push(extra).expect_err("ring full");
    drop(back);
    assert_eq!(pool.in_use(), 3);
    assert_eq!(rx.pop().map(|m| m.data()[0]), Some(0));
    assert_eq!(pool.in_use(), 2);
    // Dropping both ends frees what is still queued.
    drop(tx);
    drop(rx);
    assert_eq!(pool.in_use(), 0);
    assert!(mbuf_ring(&eal, "bad name \0", 4, -1).is_err());
    drop(pool);
    assert_eq!(leaked_pools(), 0, "a pool with every mbuf back is freed");

    // Dropping a pool, and then the EAL, while an mbuf is out leaves that mbuf valid:
    // the pool is leaked (and counted), and with it its hold on the EAL.
    let pool = Mempool::new(&eal, "wrap_leak", 63, 0, 2048 + 128, -1).expect("pool");
    let mut m = pool.alloc().expect("mbuf");
    drop(pool);
    assert_eq!(leaked_pools(), 1);
    drop(eal);
    assert!(m.set_len(64));
    m.data_mut().fill(9);
    assert_eq!(m.data(), &[9u8; 64][..]);
    drop(m);
}
