//! Follows the network interfaces of one namespace (see `registry`) and the XDP
//! programs on them, for every owner at once: one rtnetlink dump (every
//! interface's name and XDP program ids) at start, after link events, and
//! every few seconds — detaching a `bpf_link` sends no event. An interface
//! that appeared, disappeared or was renamed since the previous dump is told
//! to the registry; an owner is asked to look again only when the XDP
//! program ids of its interface differ from what it shows. The cost of a
//! quiet period is one dump and an in-memory comparison per interface.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::registry::Registry;
use crate::kernel::netlink::{self, Link};
use crate::kernel::netns::Netns;

/// How often the XDP programs of every interface are looked at without an event.
const POLL: Duration = Duration::from_secs(2);

/// One dump of the interfaces. An index of `known` missing from it is
/// asked about alone before it counts as gone: a disappearing interface
/// takes its chain and record with it.
async fn dump(netns: Option<Netns>, known: Vec<u32>) -> Option<HashMap<u32, Link>> {
    let dump = move || {
        let netns = netns.as_ref();
        let mut now = netlink::links_in(netns)?;
        let missing: Vec<u32> = known.into_iter().filter(|i| !now.contains_key(i)).collect();
        for index in missing {
            if let Some(link) = netlink::link_in(netns, index)? {
                now.insert(index, link);
            }
        }
        Ok::<_, std::io::Error>(now)
    };
    match tokio::task::spawn_blocking(dump).await {
        Ok(Ok(links)) => Some(links),
        Ok(Err(e)) => {
            tracing::error!("cannot list the interfaces (rtnetlink): {e}");
            None
        }
        Err(e) => {
            tracing::error!("listing the interfaces failed: {e}");
            None
        }
    }
}

/// Brings `registry` in line with one dump of the interfaces; `known` are
/// the names of the previous one.
pub async fn sync(registry: &Registry, known: &mut HashMap<u32, String>) {
    let Some(now) = dump(registry.netns().cloned(), known.keys().copied().collect()).await else { return };
    let names: Arc<HashMap<u32, String>> = Arc::new(now.iter().map(|(i, l)| (*i, l.name.clone())).collect());
    for (index, link) in &now {
        match known.get(index) {
            None => registry.appeared(*index, link.name.clone(), &names).await,
            Some(old) if *old != link.name => registry.renamed(*index, link.name.clone()).await,
            Some(_) => {}
        }
        // Compared with what the owner shows, not with the previous dump: a
        // chain attached and detached between two dumps is still noticed.
        registry.check_foreign(*index, link.xdp);
    }
    for index in known.keys().filter(|i| !names.contains_key(i)).copied().collect::<Vec<_>>() {
        registry.disappeared(index).await;
    }
    registry.adopt_moved(&now, &names).await;
    *known = Arc::unwrap_or_clone(names);
}

/// Subscribes to link events, syncs once, and returns the task that follows changes.
pub async fn watch(registry: Arc<Registry>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let socket = netlink::link_events_in(registry.netns())?;
    let mut known = HashMap::new();
    sync(&registry, &mut known).await;
    Ok(tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                readable = socket.readable() => {
                    let Ok(mut ready) = readable else { return };
                    netlink::drain(&socket, &mut buf);
                    ready.clear_ready();
                }
                _ = poll.tick() => {}
            }
            sync(&registry, &mut known).await;
        }
    }))
}
