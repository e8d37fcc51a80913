//! Golden vectors: values every node of an array must compute identically, forever.
//!
//! If one of these assertions fails, a change made nodes of different versions disagree on
//! buckets, session groups, URL owners or cookie values — an array upgraded one node at a time
//! would split its clients. Do not "fix" the expected values; revert the change, or version it.
//!
//! The cookie tokens and the rendezvous orders were cross-checked against independent
//! implementations (Python `hmac`/`hashlib`, and the HRW formula with `math.log`); the bucket
//! hash against a Python lookup3 that reproduces lookup3.c's published values; the node
//! ownership scores against Python's `zlib.crc32` followed by MurmurHash3's `fmix32` (the
//! score was the bare CRC until 2026-12-02, before any release or user of active-active mode:
//! the bare CRC ranks nodes so unevenly that only 6 of 20 owner/backup pairs occur with 5
//! nodes — see `owner::score`). The bucket-hash and score vectors are the
//! ones a C/BPF data plane must reproduce.

use std::net::IpAddr;

use pentaflow_balance::hash::{
    bucket_hash, jhash, mix64, stable_hash, BUCKET_HASH_SEED, HASH_SEED,
};
use pentaflow_balance::{
    owners, rendezvous_rank, score, BackendId, BucketTable, Candidate, ConnectionId, CookieCodec,
    NodeId, SessionGroups,
};

fn pool() -> Vec<Candidate> {
    ["web1", "web2", "web3", "web4", "web5"]
        .iter()
        .zip([1u32, 1, 2, 1, 3])
        .map(|(n, w)| Candidate {
            id: BackendId::from_name(n),
            weight: w,
            available: true,
            active: 0,
        })
        .collect()
}

#[test]
fn hash_seed_and_stable_hash() {
    assert_eq!(HASH_SEED, 0x5045_4E54_4146_4C57);
    assert_eq!(stable_hash(b""), 0xb074_bfaa_0f31_2ad1);
    assert_eq!(stable_hash(b"a"), 0x6983_ae60_0d2d_61e0);
    assert_eq!(stable_hash(b"pentaflow"), 0x76ad_ea9b_c632_254b);
    assert_eq!(
        stable_hash(b"http://example.com/index.html"),
        0xaea7_f595_767f_9224
    );
    assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
}

#[test]
fn backend_ids() {
    assert_eq!(
        BackendId::from_name("web1"),
        BackendId(0x11c2_7bf5_87f4_00df)
    );
    assert_eq!(
        BackendId::from_name("web2"),
        BackendId(0x22b9_2766_db6f_eeee)
    );
    assert_eq!(
        BackendId::from_name("web5"),
        BackendId(0x23b2_361f_9f4c_8a47)
    );
}

#[test]
fn rendezvous_orders() {
    let c = pool();
    let rank = |url: &str| rendezvous_rank(stable_hash(url.as_bytes()), &c);
    assert_eq!(rank("/"), vec![2, 4, 3, 1, 0]);
    assert_eq!(rank("/index.html"), vec![2, 4, 1, 0, 3]);
    assert_eq!(rank("/img/logo.png"), vec![4, 1, 0, 2, 3]);
}

#[test]
fn cookie_tokens() {
    // Computed independently with Python's hmac/hashlib/base64 from the layout in
    // `balance::cookie`'s module doc.
    let codec = CookieCodec::new(b"pentaflow-golden-secret", &["web1", "web2"]);
    let nonce = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    let t0 = 1_790_000_000;
    assert_eq!(
        codec.token("web1", nonce, t0, t0),
        "ASNFZ4mrze9qsTuAarE7gEnzDGRRygDW"
    );
    assert_eq!(
        codec.token("web2", nonce, t0, t0),
        "ASNFZ4mrze9qsTuAarE7gDaCB-THyUVf"
    );
    assert_eq!(
        codec.token("web1", [0, 0, 0, 0, 0, 0, 0, 1], t0, t0 + 3600),
        "AAAAAAAAAAFqsTuAarFJkCbUnch8pynb"
    );
    let d = codec
        .decode("AAAAAAAAAAFqsTuAarFJkCbUnch8pynb")
        .expect("golden value decodes");
    assert_eq!(d.backend, BackendId::from_name("web1"));
    assert_eq!((d.issued, d.seen), (t0, t0 + 3600));
}

#[test]
fn client_buckets_and_session_groups() {
    let t = BucketTable::new(65_536).expect("valid size");
    let bucket = |ip: &str, port| t.bucket_of(ip.parse::<IpAddr>().expect("ip"), port);
    assert_eq!(bucket("192.0.2.1", 40_000), 52_537);
    assert_eq!(bucket("::ffff:192.0.2.1", 40_000), 52_537);
    assert_eq!(bucket("2001:db8::1", 443), 5_490);
    assert_eq!(
        SessionGroups::new(1000).group_of(b"JSESSIONID=0123456789ABCDEF"),
        229
    );
}

#[test]
fn bucket_hash_vectors_for_the_c_side() {
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    assert_eq!(BUCKET_HASH_SEED, 0x5046_4C57);
    assert_eq!(jhash(b"Four score and seven years ago", 0), 0x1777_0551);
    assert_eq!(bucket_hash(ip("192.0.2.1"), 40_000), 0xb7e3_cd39);
    assert_eq!(bucket_hash(ip("2001:db8::1"), 443), 0x995d_1572);
    assert_eq!(bucket_hash(ip("10.77.2.11"), 40_000), 0x8338_31e6);
    assert_eq!(bucket_hash(ip("0.0.0.0"), 0), 0x6aed_3ca3);
}

#[test]
fn node_ownership_scores_for_the_c_side() {
    let a = ConnectionId::new(
        "10.77.1.10".parse().expect("ip"),
        80,
        "192.0.2.1".parse().expect("ip"),
        40_000,
    );
    // The CRC-32 alone of these inputs: 0x259d644c 0x98570882 0x45c1d107 0x38b2d75f 0xe5240eda.
    let want = [
        0x2100_81d8,
        0x5be8_3c37,
        0x21b8_7ff5,
        0xa5e5_e9a4,
        0x4962_e098,
    ];
    for (id, want) in (1u16..).zip(want) {
        assert_eq!(score(NodeId(id), &a), want, "node {id}");
    }
    let b = ConnectionId::new(
        "10.77.1.10".parse().expect("ip"),
        443,
        "198.51.100.7".parse().expect("ip"),
        12_345,
    );
    assert_eq!(score(NodeId(1), &b), 0x7537_b840);
    assert_eq!(score(NodeId(2), &b), 0x22df_01d7);
    assert_eq!(score(NodeId(3), &b), 0x6f8e_eef7);
    let (owner, backup) = owners(&b, &[NodeId(1), NodeId(2), NodeId(3)]);
    assert_eq!(
        (owner.map(|o| o.node), backup.map(|o| o.node)),
        (Some(NodeId(1)), Some(NodeId(3)))
    );
}
