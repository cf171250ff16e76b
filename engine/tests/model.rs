//! Property test: random op sequences against the reference model in `swarmalloc_testing::model`
//! (the same model the `engine_ops` fuzz target runs; its docs list what is checked after every
//! step). Proptest generates the ops with weights that favour allocation work and shrinks a
//! failing sequence. `PROPTEST_CASES=5000` runs deeper.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use swarmalloc_testing::model::{
    NetKind, Op, PassEnd, Pick, PortGen, Published, RacingWrite, ServiceEdit, ServiceShape, Terminal, check_ops,
};

fn pick() -> impl Strategy<Value = Pick> {
    any::<u8>().prop_map(Pick)
}

fn net_kind() -> impl Strategy<Value = NetKind> {
    prop_oneof![
        3 => any::<bool>().prop_map(|attachable| NetKind::Default { attachable }),
        3 => (0..8u8).prop_map(NetKind::Small),
        2 => (0..3u8).prop_map(NetKind::DualStack),
        1 => (0..3u8).prop_map(NetKind::NodeLocal),
        1 => Just(NetKind::Remote),
        1 => Just(NetKind::Ranged),
        1 => Just(NetKind::TwoSubnets),
        1 => (0..2u8).prop_map(NetKind::V6Only),
        1 => (0..3u8).prop_map(NetKind::PinnedVni),
        2 => Just(NetKind::Ingress),
    ]
}

fn port_gen() -> impl Strategy<Value = PortGen> {
    let protocol = prop_oneof![4 => Just(0u8), 2 => Just(1), 1 => Just(2)];
    let published = prop_oneof![
        4 => Just(Published::Dynamic),
        3 => (0..3u8).prop_map(Published::Fixed),
        1 => (0..2u8).prop_map(Published::Host),
    ];
    (protocol, 0..2u8, any::<bool>(), published).prop_map(|(protocol, target, named, published)| PortGen {
        protocol,
        target,
        named,
        published,
    })
}

fn service_shape() -> impl Strategy<Value = ServiceShape> {
    (
        prop::collection::vec(pick(), 0..3),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::collection::vec(port_gen(), 0..3),
    )
        .prop_map(|(networks, deprecated_field, dnsrr, ports)| ServiceShape {
            networks,
            deprecated_field,
            dnsrr,
            ports,
        })
}

fn service_edit() -> impl Strategy<Value = ServiceEdit> {
    prop_oneof![
        2 => pick().prop_map(ServiceEdit::AddNetwork),
        2 => pick().prop_map(ServiceEdit::RemoveNetwork),
        1 => Just(ServiceEdit::ToggleMode),
        2 => port_gen().prop_map(ServiceEdit::AddPort),
        2 => pick().prop_map(ServiceEdit::RemovePort),
        2 => Just(ServiceEdit::Touch),
        1 => service_shape().prop_map(ServiceEdit::Replace),
    ]
}

fn terminal() -> impl Strategy<Value = Terminal> {
    prop_oneof![
        Just(Terminal::Complete),
        Just(Terminal::Shutdown),
        Just(Terminal::Failed),
        Just(Terminal::Rejected),
        Just(Terminal::Orphaned),
    ]
}

fn racing_write() -> impl Strategy<Value = RacingWrite> {
    prop_oneof![
        (pick(), terminal()).prop_map(|(t, s)| RacingWrite::EndTask(t, s)),
        pick().prop_map(RacingWrite::StopTask),
        pick().prop_map(RacingWrite::DeleteTask),
        pick().prop_map(RacingWrite::DeleteService),
        (pick(), service_edit()).prop_map(|(s, e)| RacingWrite::UpdateService(s, e)),
        (pick(), pick()).prop_map(|(t, n)| RacingWrite::AssignTask(t, n)),
        pick().prop_map(RacingWrite::DeleteNode),
        pick().prop_map(RacingWrite::DeleteNetwork),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => net_kind().prop_map(Op::CreateNetwork),
        1 => pick().prop_map(Op::DeleteNetwork),
        4 => service_shape().prop_map(Op::CreateService),
        4 => (pick(), service_edit()).prop_map(|(s, e)| Op::UpdateService(s, e)),
        1 => pick().prop_map(Op::DeleteService),
        8 => pick().prop_map(Op::CreateTask),
        3 => (pick(), pick(), prop::option::of(0u8..6))
            .prop_map(|(network, node, requested)| Op::CreateAttachTask { network, node, requested }),
        2 => Just(Op::CreateNode),
        3 => (pick(), pick()).prop_map(|(t, n)| Op::AssignTask(t, n)),
        3 => pick().prop_map(Op::RunTask),
        3 => (pick(), terminal()).prop_map(|(t, s)| Op::EndTask(t, s)),
        2 => pick().prop_map(Op::DeleteTask),
        2 => pick().prop_map(Op::StopTask),
        1 => pick().prop_map(Op::DeleteNode),
        5 => Just(Op::Pass(PassEnd::Commit)),
        2 => pick().prop_map(|k| Op::Pass(PassEnd::Prefix(k))),
        2 => Just(Op::Pass(PassEnd::Drop)),
        2 => any::<u64>().prop_map(Op::Restore),
        1 => Just(Op::Settle),
        2 => racing_write().prop_map(Op::PassRacing),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES=5000 for a deeper local run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/model.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_reference_model(
        setup in prop::collection::vec(net_kind().prop_map(Op::CreateNetwork), 1..5),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        // Networks and a node first, so that most services and tasks have something to attach to.
        let ops: Vec<Op> = setup.into_iter().chain([Op::CreateNode, Op::Pass(PassEnd::Commit)]).chain(ops).collect();
        check_ops(&ops).map_err(TestCaseError::fail)?;
    }
}
