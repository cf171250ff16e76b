//! Cluster-wide allocator settings (SwarmKit's Cluster object): default address pools, dynamic
//! port range, VXLAN id range. Validated once, so the engine can rely on them.

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::error::AllocError;

/// An inclusive range of numbers, such as ports or VXLAN ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range<T> {
    pub min: T,
    pub max: T,
}

impl<T: PartialOrd + Copy> Range<T> {
    pub fn contains(&self, value: T) -> bool {
        self.min <= value && value <= self.max
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Bases that default subnets are cut from, in order (`DefaultAddrPool`).
    pub default_address_pools: Vec<Ipv4Net>,
    /// Prefix length of a default subnet (`SubnetSize`).
    pub subnet_size: u8,
    /// Dynamic published ports are drawn from here.
    pub dynamic_port_range: Range<u16>,
    /// Automatic VXLAN ids are drawn from here.
    pub vxlan_id_range: Range<u32>,
    /// Network driver plugins installed on the managers, which a spec may name besides
    /// [`crate::BUILTIN_DRIVERS`]. The engine treats them as global scope (subnets and
    /// addresses, no VXLAN ids), as it cannot ask a plugin for its capabilities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_plugins: Vec<String>,
    /// IPAM driver plugins installed on the managers, which a spec may name besides `default`.
    /// The engine allocates for them as the default driver does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipam_plugins: Vec<String>,
}

pub const VXLAN_ID_MAX: u32 = (1 << 24) - 1;

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            default_address_pools: vec![Ipv4Net::new(std::net::Ipv4Addr::new(10, 0, 0, 0), 8).expect("valid /8")],
            subnet_size: 24,
            dynamic_port_range: Range { min: 30000, max: 32767 },
            vxlan_id_range: Range { min: 4096, max: VXLAN_ID_MAX },
            network_plugins: Vec::new(),
            ipam_plugins: Vec::new(),
        }
    }
}

impl ClusterConfig {
    /// Checks the settings; every error names the field and the offending value.
    pub fn validate(&self) -> Result<(), AllocError> {
        let invalid = |field: &str, value: String, expected: &str| {
            Err(AllocError::InvalidSpec { what: format!("cluster config {field} = {value}: expected {expected}") })
        };
        if self.default_address_pools.is_empty() {
            return invalid("default_address_pools", "[]".into(), "at least one IPv4 base");
        }
        for (i, base) in self.default_address_pools.iter().enumerate() {
            if base.trunc() != *base {
                return invalid(
                    &format!("default_address_pools[{i}]"),
                    base.to_string(),
                    "a network address (host bits zero)",
                );
            }
            if self.subnet_size < base.prefix_len() || self.subnet_size > 30 {
                return invalid(
                    "subnet_size",
                    self.subnet_size.to_string(),
                    &format!("a prefix length between {} (the base {base}) and 30", base.prefix_len()),
                );
            }
            for (j, other) in self.default_address_pools.iter().enumerate().skip(i + 1) {
                if base.contains(other) || other.contains(base) {
                    return invalid(
                        &format!("default_address_pools[{j}]"),
                        other.to_string(),
                        &format!("a base that does not overlap default_address_pools[{i}] = {base}"),
                    );
                }
            }
        }
        let ports = self.dynamic_port_range;
        if ports.min == 0 || ports.min > ports.max {
            return invalid("dynamic_port_range", format!("{}..={}", ports.min, ports.max), "1 <= min <= max <= 65535");
        }
        let vnis = self.vxlan_id_range;
        if vnis.min == 0 || vnis.min > vnis.max || vnis.max > VXLAN_ID_MAX {
            return invalid("vxlan_id_range", format!("{}..={}", vnis.min, vnis.max), "1 <= min <= max <= 16777215");
        }
        for (field, names) in [("network_plugins", &self.network_plugins), ("ipam_plugins", &self.ipam_plugins)] {
            if let Some(i) = names.iter().position(|name| name.is_empty()) {
                return invalid(&format!("{field}[{i}]"), "\"\"".into(), "a plugin name");
            }
        }
        Ok(())
    }

    /// Whether a network spec may name this driver: a built-in one or an installed plugin.
    pub fn knows_network_driver(&self, name: &str) -> bool {
        crate::objects::BUILTIN_DRIVERS.contains(&name) || self.network_plugins.iter().any(|p| p == name)
    }

    /// Whether a network spec may name this IPAM driver: `default` or an installed plugin.
    pub fn knows_ipam_driver(&self, name: &str) -> bool {
        name == crate::objects::DEFAULT_IPAM_DRIVER || self.ipam_plugins.iter().any(|p| p == name)
    }

    /// The `index`-th default subnet, in base order then address order, if there is one.
    pub(crate) fn default_subnet(&self, mut index: u64) -> Option<IpNet> {
        for base in &self.default_address_pools {
            let count = 1u64 << (self.subnet_size - base.prefix_len());
            if index < count {
                let step = 1u64 << (32 - self.subnet_size);
                let addr = u32::from(base.network()) as u64 + index * step;
                let net = Ipv4Net::new(std::net::Ipv4Addr::from(addr as u32), self.subnet_size).expect("valid prefix");
                return Some(IpNet::V4(net));
            }
            index -= count;
        }
        None
    }

    /// The index of `subnet` among the default subnets, if it is one.
    pub(crate) fn default_subnet_index(&self, subnet: &IpNet) -> Option<u64> {
        let IpNet::V4(net) = subnet else { return None };
        if net.prefix_len() != self.subnet_size {
            return None;
        }
        let mut offset = 0u64;
        for base in &self.default_address_pools {
            let count = 1u64 << (self.subnet_size - base.prefix_len());
            if base.contains(net) {
                let step = 1u64 << (32 - self.subnet_size);
                return Some(offset + (u32::from(net.network()) - u32::from(base.network())) as u64 / step);
            }
            offset += count;
        }
        None
    }

    /// The index just past the last default subnet of the base that holds subnet `index`.
    pub(crate) fn default_base_end(&self, index: u64) -> u64 {
        let mut end = 0u64;
        for base in &self.default_address_pools {
            end += 1u64 << (self.subnet_size - base.prefix_len());
            if index < end {
                return end;
            }
        }
        end
    }

    pub(crate) fn default_subnet_count(&self) -> u64 {
        self.default_address_pools.iter().map(|b| 1u64 << (self.subnet_size - b.prefix_len())).sum()
    }
}
