//! The scenario file's serde model: plain structs with `deny_unknown_fields`, one per table of
//! the file, and the value forms people write (durations such as "1.5s", a network by its id
//! or as a table, a published port as "8080:80/tcp").

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use swarmalloc::{
    ClusterConfig, IpamConfig, NetworkAttachmentConfig, NetworkId, NodeId, PortConfig, Protocol, PublishMode,
    ResolutionMode, ServiceId, TaskId, TaskState,
};

use crate::faults::FaultKind;
use crate::scenario::{InitialState, RaftSettings, Weights};
use crate::store::Origin;

// ------------------------------------------------------------------------------------------------
// Durations: "1500ms", "2s", "1.5s", "1m", or an integer number of milliseconds.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Dur(pub(super) u64);

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1000) {
            s.serialize_str(&format!("{}s", self.0 / 1000))
        } else {
            s.serialize_str(&format!("{}ms", self.0))
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"1500ms\", \"2s\", \"1.5s\" or \"1m\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v).map(Dur).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) fn parse_duration(text: &str) -> Option<Dur> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    let value: f64 = number.trim().parse().ok()?;
    let ms = value * scale;
    (value.is_finite() && value >= 0.0 && ms < 1e15 && ms.fract() == 0.0).then_some(Dur(ms as u64))
}

// ------------------------------------------------------------------------------------------------
// The file model.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileModel {
    pub(super) name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) seed: Option<u64>,
    pub(super) cluster: ClusterFile,
    #[serde(default, skip_serializing_if = "is_default_raft")]
    pub(super) raft: RaftSettings,
    #[serde(default, skip_serializing_if = "is_default_config")]
    pub(super) config: ClusterConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) random: Option<RandomFile>,
    #[serde(default)]
    pub(super) expect: ExpectFile,
    #[serde(default, skip_serializing_if = "InitialState::is_empty")]
    pub(super) initial: InitialState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) step: Vec<toml::Spanned<StepFile>>,
    /// One old allocator behaviour to turn on (legacy builds only).
    #[cfg(feature = "legacy")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) legacy: Option<swarmalloc::legacy::Flavour>,
}

pub(super) fn is_default_raft(r: &RaftSettings) -> bool {
    *r == RaftSettings::default()
}

pub(super) fn is_default_config(c: &ClusterConfig) -> bool {
    *c == ClusterConfig::default()
}

pub(super) fn default_managers() -> u8 {
    3
}

pub(super) fn default_clients() -> u8 {
    1
}

pub(super) fn default_batch() -> usize {
    200
}

pub(super) fn yes() -> bool {
    true
}

pub(super) fn is_true(b: &bool) -> bool {
    *b
}

pub(super) fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClusterFile {
    #[serde(default = "default_managers")]
    pub(super) managers: u8,
    #[serde(default)]
    pub(super) workers: u8,
    #[serde(default = "default_clients")]
    pub(super) clients: u8,
    pub(super) duration: Dur,
    /// Faults stop and everything heals at this time; defaults to 0 (no faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) faults_until: Option<Dur>,
    #[serde(default = "default_batch")]
    pub(super) batch_max: usize,
    #[serde(default, skip_serializing_if = "is_false")]
    pub(super) stop_when_all_pending: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RandomFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) workload: Option<GeneratorFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) faults: Option<FaultsFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GeneratorFile {
    pub(super) networks: u32,
    pub(super) services: u32,
    pub(super) replicas_min: u64,
    pub(super) replicas_max: u64,
    pub(super) changes: u32,
    pub(super) ops_until: Dur,
    #[serde(default, skip_serializing_if = "is_default_weights")]
    pub(super) weights: Weights,
}

pub(super) fn is_default_weights(w: &Weights) -> bool {
    *w == Weights::default()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FaultsFile {
    pub(super) kinds: Vec<FaultKind>,
    #[serde(default = "yes")]
    pub(super) swarm: bool,
    /// Fixed rates instead of the seed's draw.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) rates: BTreeMap<FaultKind, f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExpectFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) checkers: Vec<String>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub(super) per_entry: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub(super) engine_after_batch: bool,
    #[serde(default, rename = "assert", skip_serializing_if = "Vec::is_empty")]
    pub(super) asserts: Vec<AssertFile>,
}

impl Default for ExpectFile {
    fn default() -> ExpectFile {
        ExpectFile { checkers: Vec::new(), per_entry: true, engine_after_batch: true, asserts: Vec::new() }
    }
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssertFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) service: Option<ServiceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) network: Option<NetworkId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) running: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) distinct_addresses: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) vip_unchanged_since: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) no_task_in: Option<TaskState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) allocated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) subnet: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gone: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) vip_networks: Option<Vec<NetworkId>>,
}

/// One `[[step]]`: `at` and exactly one action key.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepFile {
    pub(super) at: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) create_network: Option<NetworkDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) remove_network: Option<NetworkId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) create_service: Option<ServiceDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) update_service: Option<ServiceDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) remove_service: Option<ServiceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) scale: Option<ScaleDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) attach: Option<AttachDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) detach: Option<TaskId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) drain_node: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) remove_node: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fail_task: Option<FailDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) partition: Option<PartitionDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) heal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) kill: Option<KillDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) restart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) restart_allocator: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) cut_batch: Option<CutDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ambiguous_proposal: Option<AmbiguousDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) drop_proposal: Option<DropDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) drop_messages: Option<MessagesDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) delay_messages: Option<MessagesDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) duplicate_messages: Option<MessagesDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) slow_node: Option<SlowDef>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScaleDef {
    pub(super) service: ServiceId,
    pub(super) replicas: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AttachDef {
    pub(super) task: TaskId,
    pub(super) network: NetworkId,
    pub(super) node: NodeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) address: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FailDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) task: Option<TaskId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) service: Option<ServiceId>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) slot: u64,
}

pub(super) fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PartitionDef {
    pub(super) node: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub(super) for_: Option<Dur>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KillDef {
    pub(super) node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) restart_after: Option<Dur>,
}

pub(super) fn two_seconds() -> Dur {
    Dur(2_000)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CutDef {
    pub(super) after: u64,
    #[serde(default = "two_seconds", rename = "for")]
    pub(super) for_: Dur,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AmbiguousDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) origin: Option<Origin>,
    #[serde(default = "two_seconds", rename = "for")]
    pub(super) for_: Dur,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) skip: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DropDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) origin: Option<Origin>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) skip: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MessagesDef {
    pub(super) rate: f64,
    #[serde(rename = "for")]
    pub(super) for_: Dur,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SlowDef {
    pub(super) node: String,
    pub(super) extra: Dur,
    #[serde(rename = "for")]
    pub(super) for_: Dur,
}

/// A network in a step: `subnet`/`gateway` for one IPAM config, or `ipam` for any number.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NetworkDef {
    pub(super) id: NetworkId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) driver_options: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) subnet: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ipam: Option<Vec<IpamConfig>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) ipam_driver: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub(super) attachable: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub(super) ingress: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) labels: BTreeMap<String, String>,
}

/// A service in a step. `mode` or `ports` make an endpoint spec; neither means none.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceDef {
    pub(super) id: ServiceId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(default = "one")]
    pub(super) replicas: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) networks: Vec<NetRef>,
    /// The older service-level attachments (`ServiceSpec.Networks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) service_networks: Vec<NetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) mode: Option<ResolutionMode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) ports: Vec<PortDef>,
}

pub(super) fn one() -> u64 {
    1
}

/// A network attachment: the network's id, or a table with aliases and requested addresses.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct NetRef(pub(super) NetworkAttachmentConfig);

impl Serialize for NetRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = &self.0;
        if a.aliases.is_empty() && a.addresses.is_empty() && a.driver_attachment_opts.is_empty() {
            s.serialize_str(a.target.as_str())
        } else {
            a.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for NetRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NetRef, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NetRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a network id, or a table { target, aliases, addresses }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NetRef, E> {
                Ok(NetRef(NetworkAttachmentConfig::to(NetworkId::new(v))))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NetRef, A::Error> {
                NetworkAttachmentConfig::deserialize(de::value::MapAccessDeserializer::new(map)).map(NetRef)
            }
        }
        d.deserialize_any(V)
    }
}

/// A published port: "8080:80/tcp" (ingress, published 8080, target 80), ":80" or "80" (a
/// dynamic published port), "host:8080:80/udp" (host mode); or a table with a `name`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct PortDef(pub(super) PortConfig);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PortTable {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) name: String,
    #[serde(default = "tcp")]
    pub(super) protocol: Protocol,
    pub(super) target: u16,
    #[serde(default)]
    published: u16,
    #[serde(default)]
    pub(super) mode: PublishMode,
}

pub(super) fn tcp() -> Protocol {
    Protocol::Tcp
}

pub(super) fn port_text(p: &PortConfig) -> String {
    let host = if p.publish_mode == PublishMode::Host { "host:" } else { "" };
    let published = if p.published_port == 0 { String::new() } else { p.published_port.to_string() };
    format!("{host}{published}:{}/{}", p.target_port, p.protocol)
}

pub(super) fn parse_port(text: &str) -> Option<PortConfig> {
    let (mode, rest) = match text.strip_prefix("host:") {
        Some(rest) => (PublishMode::Host, rest),
        None => (PublishMode::Ingress, text.strip_prefix("ingress:").unwrap_or(text)),
    };
    let (ports, protocol) = match rest.rsplit_once('/') {
        Some((ports, proto)) => (ports, serde_json::from_value(serde_json::Value::String(proto.into())).ok()?),
        None => (rest, Protocol::Tcp),
    };
    let (published, target) = match ports.split_once(':') {
        Some(("", target)) => (0, target.parse().ok()?),
        Some((published, target)) => (published.parse().ok()?, target.parse().ok()?),
        None => (0, ports.parse().ok()?),
    };
    Some(PortConfig {
        name: String::new(),
        protocol,
        target_port: target,
        published_port: published,
        publish_mode: mode,
    })
}

impl Serialize for PortDef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = &self.0;
        if p.name.is_empty() {
            return s.serialize_str(&port_text(p));
        }
        PortTable {
            name: p.name.clone(),
            protocol: p.protocol,
            target: p.target_port,
            published: p.published_port,
            mode: p.publish_mode,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for PortDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PortDef, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PortDef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port such as \"8080:80/tcp\", \":80\" or \"host:8080:80/udp\", or a table { name, protocol, target, published, mode }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortDef, E> {
                parse_port(v).map(PortDef).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PortDef, A::Error> {
                let t = PortTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PortDef(PortConfig {
                    name: t.name,
                    protocol: t.protocol,
                    target_port: t.target,
                    published_port: t.published,
                    publish_mode: t.mode,
                }))
            }
        }
        d.deserialize_any(V)
    }
}
