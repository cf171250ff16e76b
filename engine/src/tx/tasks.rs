//! Tasks: attachments from the task's own networks (or the service's deprecated field), one
//! address per family each, the service's endpoint copied, NEW -> PENDING; repairs of live tasks.

use std::borrow::Cow;

use ipnet::IpNet;

use super::{Outcome, PENDING_MESSAGE, Tx};
use crate::error::AllocError;
use crate::index::Holder;
use crate::objects::{
    DriverScope, NetworkAttachment, NetworkAttachmentConfig, Object, Service, Task, TaskState, TaskStatus,
};

impl Tx<'_> {
    /// Allocates a NEW task (desired state up to RUNNING): builds its attachments, gives each an
    /// address per address family, copies the service endpoint, and moves it to PENDING. A live
    /// task past NEW whose address was lost to a conflict gets a fresh one for that address only.
    pub fn allocate_task(&mut self, task: &Task, service: Option<&Service>) -> Result<Outcome, AllocError> {
        if !task.status.state.is_live() || self.contains_task(&task.id) {
            return Ok(Outcome::Unchanged);
        }
        let holder = Holder::Task(task.id.clone());
        if task.status.state != TaskState::New {
            return self.atomically(|tx| tx.repair_task(task, &holder));
        }
        // B5 (legacy): the old allocator allocated any task below PENDING, whatever its desired
        // state (docs/swarmkit.md section 1.3), racing the deletion of tasks already told to stop.
        #[cfg(feature = "legacy")]
        let stopping = task.desired_state > TaskState::Running && !self.state.mode.is(crate::legacy::Flavour::B5);
        #[cfg(not(feature = "legacy"))]
        let stopping = task.desired_state > TaskState::Running;
        if stopping {
            return Ok(Outcome::Unchanged);
        }
        let service = match &task.service_id {
            None => None,
            Some(service_id) => {
                let pending = self.services.get(service_id).map(|&i| &self.updates[i]);
                // The caller's service is borrowed; one updated in this proposal is copied
                // (the proposal is written to while the task is allocated).
                let service = match pending {
                    Some(Object::Service(updated)) => Cow::Owned(updated.clone()),
                    _ => Cow::Borrowed(
                        service
                            .filter(|s| &s.id == service_id)
                            .ok_or_else(|| AllocError::needs(format!("service {service_id}")))?,
                    ),
                };
                if !self.service_is_current(&service)? {
                    return Err(AllocError::needs(format!("service {service_id}")));
                }
                Some(service)
            }
        };
        self.atomically(|tx| tx.allocate_new_task(task, service.as_deref(), &holder))
    }

    pub(super) fn allocate_new_task(
        &mut self,
        task: &Task,
        service: Option<&Service>,
        holder: &Holder,
    ) -> Result<Outcome, AllocError> {
        let mut attachments = Vec::new();
        if task.networks.is_empty() {
            let ingress = service
                .filter(|s| s.spec.needs_ingress())
                .and_then(|_| self.ingress())
                .map(|id| NetworkAttachmentConfig::to(id.clone()));
            // SwarmKit's rule: the task's own networks (the orchestrator copied the service's
            // `task_networks` there), else only the service's deprecated `networks`.
            let from_spec = if task.spec.networks.is_empty() {
                service.map_or(&[][..], |s| &s.spec.networks[..])
            } else {
                &task.spec.networks
            };
            attachments.reserve(from_spec.len() + ingress.is_some() as usize);
            for config in ingress.iter().chain(from_spec) {
                self.attach_config(&mut attachments, config, holder)?;
            }
        } else {
            // Attachments already built (an attachable-network container): their addresses are requests.
            for a in &task.networks {
                let config = NetworkAttachmentConfig {
                    target: a.network_id.clone(),
                    aliases: a.aliases.clone(),
                    addresses: a.addresses.iter().map(IpNet::addr).collect(),
                    driver_attachment_opts: a.driver_attachment_opts.clone(),
                };
                self.attach_config(&mut attachments, &config, holder)?;
            }
        }
        // Built field by field: the fields replaced here are not cloned first.
        let updated = Task {
            id: task.id.clone(),
            version: task.version,
            service_id: task.service_id.clone(),
            node_id: task.node_id.clone(),
            slot: task.slot,
            spec: task.spec.clone(),
            status: TaskStatus { state: TaskState::Pending, message: PENDING_MESSAGE.to_string() },
            desired_state: task.desired_state,
            networks: attachments,
            endpoint: service.and_then(|s| s.endpoint.clone()),
        };
        self.push(Object::Task(updated));
        Ok(Outcome::Updated)
    }

    /// Adds the attachment one config asks for, unless the network is listed already. A network
    /// missing from the store makes the task wait (retryable): SwarmKit skips such a target when
    /// it first builds a task's attachments but fails once they are built; the engine waits in
    /// both cases rather than start a task without a network its spec names.
    pub(super) fn attach_config(
        &mut self,
        attachments: &mut Vec<NetworkAttachment>,
        config: &NetworkAttachmentConfig,
        holder: &Holder,
    ) -> Result<(), AllocError> {
        if attachments.iter().any(|a| a.network_id == config.target) {
            return Ok(());
        }
        let Some(view) = self.net(&config.target) else {
            return Err(AllocError::needs(format!("network {} (not in the store)", config.target)));
        };
        let addresses = if view.scope == DriverScope::NodeLocal {
            // No swarm-level address; requested ones are passed through to the node.
            config.addresses.iter().map(|ip| IpNet::from(*ip)).collect()
        } else {
            self.attach(&config.target, &config.addresses, holder)?
        };
        attachments.push(NetworkAttachment {
            network_id: config.target.clone(),
            addresses,
            aliases: config.aliases.clone(),
            driver_attachment_opts: config.driver_attachment_opts.clone(),
        });
        Ok(())
    }

    pub(super) fn repair_task(&mut self, task: &Task, holder: &Holder) -> Result<Outcome, AllocError> {
        let mut updated: Option<Task> = None;
        for (i, attachment) in task.networks.iter().enumerate() {
            let Some(view) = self.net(&attachment.network_id) else { continue };
            if view.scope == DriverScope::NodeLocal || attachment.addresses.is_empty() {
                continue;
            }
            if let Some(addrs) = self.repair(&attachment.network_id, &attachment.addresses, holder)? {
                updated.get_or_insert_with(|| task.clone()).networks[i].addresses = addrs;
            }
        }
        match updated {
            Some(task) => {
                self.push(Object::Task(task));
                Ok(Outcome::Updated)
            }
            None => Ok(Outcome::Unchanged),
        }
    }
}
