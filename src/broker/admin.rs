//! The core seen by the admin API: read-only snapshots (`switchboard_api::Admin`).

use super::Core;
use std::net::SocketAddr;
use switchboard_api::BrokerError;
use switchboard_api::admin::{
    Admin, BindingInfo, ConnectionInfo, ExchangeInfo, QueueSummary, UserInfo,
};

impl Admin for Core {
    fn vhost_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn exchanges(&self, vhost: &str) -> Result<Vec<ExchangeInfo>, BrokerError> {
        Ok(self.vhost(vhost)?.exchange_infos())
    }

    fn queues(&self, vhost: &str) -> Result<Vec<QueueSummary>, BrokerError> {
        Ok(self.vhost(vhost)?.queue_summaries())
    }

    fn bindings(&self, vhost: &str) -> Result<Vec<BindingInfo>, BrokerError> {
        Ok(self.vhost(vhost)?.binding_infos())
    }

    fn users(&self) -> Vec<UserInfo> {
        self.inner.users.list()
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        self.inner.conns.list()
    }

    fn close_connection(&self, peer: SocketAddr) -> bool {
        self.inner.conns.close(peer)
    }

    fn add_vhost(&self, name: &str) -> Result<(), BrokerError> {
        Core::add_vhost(self, name);
        Ok(())
    }
}
