//! Three real shells on 127.0.0.1 (ports allocated by the kernel): they elect one scheduler,
//! and when its task is killed the other two elect a new one within a second.

// Test helpers outside #[test] fns: a panic is the failure report (see .clippy.toml).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use pentaflow_balance::NodeId;
use pentaflow_cluster::{spawn_on, ClusterHandle, ClusterKey, NodeParams, Role, Timing};
use tokio::net::UdpSocket;
use tokio::time::{sleep, timeout, Instant};

fn params(id: u16, priority: u8) -> NodeParams {
    NodeParams {
        id: NodeId(id),
        priority,
        weight: 1,
        incarnation: 1,
        key: ClusterKey::new(b"shell-test-cluster-key".to_vec()).unwrap(),
        table_size: 4096,
        timing: Timing::default(),
        preempt: false,
        quorum: 1,
    }
}

async fn array(n: u16) -> Vec<ClusterHandle> {
    let mut sockets = Vec::new();
    for _ in 0..n {
        sockets.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    sockets
        .into_iter()
        .zip(1..)
        .map(|(s, id)| {
            spawn_on(s, params(id, 5), addrs.clone(), Box::new(|_: &str| Ok(()))).unwrap()
        })
        .collect()
}

/// Wait until exactly one of `handles` is an accepting scheduler that all others follow.
async fn one_scheduler(handles: &[&ClusterHandle], within: Duration) -> NodeId {
    let start = Instant::now();
    loop {
        let views: Vec<_> = handles.iter().map(|h| h.view.borrow().clone()).collect();
        let schedulers: Vec<_> = views.iter().filter(|v| v.role == Role::Scheduler).collect();
        if let [s] = schedulers[..] {
            let id = s.scheduler.unwrap();
            if s.accepting_new && views.iter().all(|v| v.scheduler == Some(id)) {
                return id;
            }
        }
        assert!(
            start.elapsed() < within,
            "no single scheduler within {within:?}: {views:?}"
        );
        sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn three_nodes_elect_and_fail_over_within_a_second() {
    let mut handles = array(3).await;
    let first = one_scheduler(&handles.iter().collect::<Vec<_>>(), Duration::from_secs(3)).await;
    assert_eq!(first, NodeId(1), "equal priorities: the lowest id");

    // The scheduler assigns a bucket through its data-plane channel; replicas receive it.
    handles[0]
        .assignments
        .send(vec![(7, Some(NodeId(2)))])
        .await
        .unwrap();
    for h in &mut handles[1..] {
        timeout(
            Duration::from_secs(2),
            h.view
                .wait_for(|v| v.table.assigned.contains(&(7, NodeId(2)))),
        )
        .await
        .expect("replicated")
        .unwrap();
    }
    // Node 2 holds a live connection in bucket 7.
    handles[1].set_live_buckets(vec![7]).await.unwrap();

    let killed = Instant::now();
    handles[0].abort();
    let rest: Vec<&ClusterHandle> = handles[1..].iter().collect();
    let second = one_scheduler(&rest, Duration::from_secs(1)).await;
    let took = killed.elapsed();
    eprintln!("failover on loopback took {took:?}");
    assert_eq!(second, NodeId(2));
    let view = handles[1].view.borrow().clone();
    assert!(
        view.table.assigned.contains(&(7, NodeId(2))),
        "live bucket kept"
    );
    assert!(
        !view.nodes.iter().any(|n| n.id == NodeId(1)),
        "node 1 failed"
    );
}

#[tokio::test]
async fn config_push_and_commit_over_udp() {
    let handles = array(3).await;
    one_scheduler(&handles.iter().collect::<Vec<_>>(), Duration::from_secs(3)).await;
    let mut h = handles;
    let text = "[node]\n".repeat(500);
    let p = h[2].push_config(text.clone()).await.unwrap();
    let ready = timeout(Duration::from_secs(2), async {
        while let Some(e) = h[2].events.recv().await {
            if let pentaflow_cluster::Output::Config(pentaflow_cluster::ConfigEvent::Ready {
                proposal,
            }) = e
            {
                return proposal;
            }
        }
        0
    })
    .await
    .unwrap();
    assert_eq!(ready, p);
    let v = h[2].commit_config(p).await.unwrap();
    for x in &mut h {
        timeout(
            Duration::from_secs(2),
            x.view.wait_for(|view| view.config_version == v),
        )
        .await
        .expect("committed everywhere")
        .unwrap();
    }
}

#[tokio::test]
async fn info_shows_members_and_the_status_poll() {
    let handles = array(3).await;
    one_scheduler(&handles.iter().collect::<Vec<_>>(), Duration::from_secs(3)).await;
    let status = pentaflow_cluster::NodeStatus {
        open_connections: 4,
        live_buckets: 2,
        ..Default::default()
    };
    handles[1].set_status(status, 10).await.unwrap();
    let mut watch = handles[0].info.clone();
    let info = timeout(
        Duration::from_secs(3),
        watch.wait_for(|i| {
            i.members.len() == 2
                && i.members.iter().all(|m| m.alive)
                && i.polled.iter().any(|p| {
                    p.id == NodeId(2) && p.status.open_connections == status.open_connections
                })
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("not published: {:?}", handles[0].info.borrow()))
    .unwrap()
    .clone();
    assert_eq!(info.node, Some(NodeId(1)));
    assert_eq!(info.role, Some(Role::Scheduler));
    assert!(info.members.iter().all(|m| m.heard_ms_ago < 1000));
    assert_eq!(info.drops.forged, 0);
}

#[tokio::test]
async fn the_scheduler_sums_every_nodes_web_server_table() {
    let handles = array(3).await;
    let sched = one_scheduler(&handles.iter().collect::<Vec<_>>(), Duration::from_secs(3)).await;
    let row = |hits, up, groups| pentaflow_cluster::ServerRow {
        service: "web".into(),
        name: "web1".into(),
        address: "10.0.0.1:80".into(),
        up,
        hits,
        open_connections: 1,
        avg_response_us: 100,
        session_groups: groups,
    };
    for (i, h) in handles.iter().enumerate() {
        let i = i as u64;
        h.set_server_status(vec![row(10 + i, i != 1, 2)])
            .await
            .unwrap();
    }
    let s = &handles[usize::from(sched.0 - 1)];
    let mut watch = s.info.clone();
    let info = timeout(
        Duration::from_secs(3),
        watch.wait_for(|i| i.summary.first().is_some_and(|r| r.nodes_reporting == 3)),
    )
    .await
    .unwrap_or_else(|_| panic!("no summary over 3 nodes: {:?}", s.info.borrow()))
    .unwrap()
    .clone();
    let r = &info.summary[0];
    assert_eq!((r.hits, r.open_connections, r.session_groups), (33, 3, 6));
    assert_eq!((r.up, r.nodes_up, r.nodes_down), (true, 2, 1));
    assert!(r.age_ms < 2_000, "{r:?}");
    // The scheduler's own row of the Node Status Table is there, age 0.
    assert!(info.polled.iter().any(|p| p.id == sched && p.age_ms == 0));
    assert_eq!(info.server_rows_dropped, 0);
}

/// The binary's way: each shell on a thread of its own, driven from another runtime (here a
/// plain test thread); dropping a handle ends that node (its thread's runtime stops).
#[test]
fn shells_on_their_own_threads_elect_and_stop_when_dropped() {
    let ports: Vec<SocketAddr> = (0..2)
        .map(|_| {
            std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .collect();
    let handles: Vec<ClusterHandle> = ports
        .iter()
        .zip(1..)
        .map(|(&bind, id)| {
            let cfg = pentaflow_cluster::ShellConfig {
                params: params(id, 5),
                bind,
                peers: ports.clone(),
            };
            pentaflow_cluster::spawn_thread(cfg, Box::new(|_: &str| Ok(()))).unwrap()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let first =
            one_scheduler(&handles.iter().collect::<Vec<_>>(), Duration::from_secs(3)).await;
        assert_eq!(first, NodeId(1));
        let mut handles = handles;
        drop(handles.remove(0));
        let second = one_scheduler(&[&handles[0]], Duration::from_secs(2)).await;
        assert_eq!(second, NodeId(2), "node 1 stopped with its handle");
    });
}
