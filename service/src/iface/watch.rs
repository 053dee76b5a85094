//! Follows the network interfaces of the service's namespace, and the XDP
//! programs on them: an rtnetlink socket subscribed to link events wakes us,
//! and a rescan of the interface list tells what appeared, disappeared or was
//! renamed (no message parsing to get wrong, and a lost event only delays the
//! next rescan).

use std::collections::HashMap;
use std::sync::Arc;

use super::registry::Registry;
use crate::kernel::netlink;

/// Brings `registry` in line with the interfaces present now.
pub async fn sync(registry: &Registry, known: &mut HashMap<u32, String>) {
    let now = netlink::interfaces();
    for (index, name) in &now {
        match known.get(index) {
            None => registry.appeared(*index, name.clone(), &now).await,
            Some(old) if old != name => registry.renamed(*index, name.clone()).await,
            Some(_) => {}
        }
    }
    for index in known.keys().filter(|i| !now.contains_key(i)).copied().collect::<Vec<_>>() {
        registry.disappeared(index).await;
    }
    *known = now;
}

/// Subscribes to link events, syncs once, and returns the task that follows changes.
pub async fn watch(registry: Arc<Registry>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let socket = netlink::link_events()?;
    let mut known = HashMap::new();
    sync(&registry, &mut known).await;
    registry.check_foreign();
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        // Detaching a bpf_link sends no netlink event: look every few seconds too.
        let mut poll = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            let readable = tokio::select! {
                r = socket.readable() => r,
                _ = poll.tick() => { registry.check_foreign(); continue }
            };
            let Ok(mut ready) = readable else { return };
            netlink::drain(&socket, &mut buf);
            ready.clear_ready();
            sync(&registry, &mut known).await;
            registry.check_foreign();
        }
    }))
}
