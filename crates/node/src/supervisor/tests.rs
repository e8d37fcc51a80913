use std::sync::Arc;

use pentaflow_balance::{BucketSnapshot, NodeCandidate, NodeId};
use pentaflow_cluster::{ClusterView, Role};

use super::*;

fn view(role: Role, version: u64, accepting_new: bool, alive: &[u16]) -> ClusterView {
    let nodes: Vec<NodeCandidate> = alive
        .iter()
        .map(|&id| NodeCandidate {
            id: NodeId(id),
            weight: 1,
            enabled: true,
            alive: true,
        })
        .collect();
    ClusterView {
        role,
        scheduler: (role == Role::Scheduler).then_some(NodeId(1)),
        accepting_new,
        table: Arc::new(BucketSnapshot {
            size: 16,
            version,
            assigned: Vec::new(),
        }),
        version,
        nodes: nodes.into(),
        config_version: 0,
        epoch: 0,
    }
}

fn start(s: &mut Supervisor) {
    let a = s.handle(Event::View(view(Role::Scheduler, 3, false, &[1, 2])), 0);
    assert!(matches!(
        a[..],
        [Action::StartScheduler {
            accepting_new: false,
            ..
        }]
    ));
    assert_eq!(s.data_plane(), DataPlane::Starting);
    assert_eq!(s.handle(Event::Started, 1), [Action::Notify("scheduler")]);
}

#[test]
fn a_standby_runs_nothing() {
    let mut s = Supervisor::default();
    assert!(s
        .handle(Event::View(view(Role::Standby, 1, false, &[1, 2])), 0)
        .is_empty());
    assert_eq!(s.data_plane(), DataPlane::Down);
}

#[test]
fn the_merge_is_adopted_before_new_buckets_are_allowed_then_never_again() {
    let mut s = Supervisor::default();
    start(&mut s);
    let during = view(Role::Scheduler, 4, false, &[1, 2]);
    let a = s.handle(Event::View(during.clone()), 2);
    assert_eq!(a, [Action::Adopt(Arc::clone(&during.table))]);
    let done = view(Role::Scheduler, 5, true, &[1, 2]);
    let a = s.handle(Event::View(done.clone()), 3);
    assert_eq!(
        a,
        [
            Action::Adopt(Arc::clone(&done.table)),
            Action::SetAcceptingNew(true)
        ],
        "the merged table first, then the end of the hold"
    );
    // After the merge the data plane is the only writer: newer replicas are its own echo.
    let a = s.handle(Event::View(view(Role::Scheduler, 9, true, &[1, 2])), 4);
    assert!(a.is_empty(), "{a:?}");
    // A node failed: the node table changes, nothing else.
    let a = s.handle(Event::View(view(Role::Scheduler, 9, true, &[1])), 5);
    assert!(matches!(a[..], [Action::UpdateNodes(_)]), "{a:?}");
}

#[test]
fn losing_the_role_stops_the_data_plane() {
    let mut s = Supervisor::default();
    start(&mut s);
    let a = s.handle(Event::View(view(Role::Standby, 6, false, &[1, 2])), 10);
    assert_eq!(
        a,
        [
            Action::StopScheduler {
                why: "no longer the elected scheduler"
            },
            Action::Notify("standby")
        ]
    );
    assert_eq!(s.data_plane(), DataPlane::Down);
}

#[test]
fn a_data_plane_that_cannot_start_relinquishes_and_is_counted() {
    let mut s = Supervisor::new(1_000);
    s.handle(Event::View(view(Role::Scheduler, 3, true, &[1, 2])), 0);
    let cause = "scheduler set-up: `nft` not found (install the nftables package)".to_owned();
    let a = s.handle(
        Event::StartFailed {
            cause: cause.clone(),
        },
        5,
    );
    assert_eq!(
        a,
        [
            Action::Relinquish { hold_ms: 1_000 },
            Action::Notify("fault")
        ]
    );
    assert_eq!(s.failures(), 1);
    assert_eq!(
        s.last_failure()
            .map(|f| (f.at, f.at_start, f.cause.as_str())),
        Some((5, true, cause.as_str()))
    );
    // A view published before the cluster heard the relinquish must not restart it ...
    assert!(s
        .handle(Event::View(view(Role::Scheduler, 3, true, &[1, 2])), 6)
        .is_empty());
    // ... the step-down does not stop anything (nothing runs) ...
    assert!(s
        .handle(Event::View(view(Role::Standby, 3, false, &[1, 2])), 7)
        .is_empty());
    // ... and once elected again (alone, after the hold-off) it retries.
    let a = s.handle(Event::View(view(Role::Scheduler, 3, true, &[1])), 1_200);
    assert!(matches!(a[..], [Action::StartScheduler { .. }]), "{a:?}");
}

#[test]
fn a_lost_relinquish_does_not_block_the_node_forever() {
    let mut s = Supervisor::new(1_000);
    start(&mut s);
    let a = s.handle(
        Event::Died {
            cause: "scheduler loop: Network is down (os error 100)".to_owned(),
        },
        100,
    );
    assert_eq!(a[0], Action::Relinquish { hold_ms: 1_000 });
    assert!(!s.last_failure().is_some_and(|f| f.at_start));
    assert!(s
        .handle(Event::View(view(Role::Scheduler, 3, true, &[1])), 500)
        .is_empty());
    let a = s.handle(Event::View(view(Role::Scheduler, 3, true, &[1])), 1_100);
    assert!(matches!(a[..], [Action::StartScheduler { .. }]), "{a:?}");
}

#[test]
fn a_failure_after_a_stop_is_not_counted() {
    let mut s = Supervisor::default();
    start(&mut s);
    s.handle(Event::View(view(Role::Standby, 6, false, &[1, 2])), 10);
    assert!(s
        .handle(
            Event::Died {
                cause: "late".to_owned()
            },
            11
        )
        .is_empty());
    assert_eq!(s.failures(), 0);
}
