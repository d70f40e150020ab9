//! The host routing the datapath relies on, managed with `ip(8)`.
//!
//! Packets the programs steer to the proxy keep their original (non-local)
//! destination; without a route that makes every address local they would
//! be forwarded instead of delivered to the proxy's socket. The redirect
//! mark selects such a table: `ip rule fwmark MARK/MASK lookup TABLE` and
//! `local 0.0.0.0/0 dev lo table TABLE`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::Context;
use serde::Deserialize;

use super::abi::{MARK_MAGIC_MASK, MARK_MAGIC_REDIRECT};
use crate::command::ip;

/// The routing table with the catch-all local route.
const TABLE: &str = "2005";
/// The rule's priority: before the main table (32766).
const PRIORITY: &str = "9";

fn mark() -> String {
    format!("{MARK_MAGIC_REDIRECT:#x}/{MARK_MAGIC_MASK:#x}")
}

/// Installs the rule and the local route (idempotent).
pub fn install_redirect_routing() -> anyhow::Result<()> {
    let rules = ip(&["-4", "rule", "show", "priority", PRIORITY])?;
    if !rules.contains(&format!("lookup {TABLE}")) {
        ip(&["-4", "rule", "add", "priority", PRIORITY, "fwmark", &mark(), "lookup", TABLE])?;
    }
    ip(&["-4", "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", TABLE])?;
    Ok(())
}

/// Removes the rule and the table's route; missing ones are fine.
pub fn remove_redirect_routing() -> anyhow::Result<()> {
    while ip(&["-4", "rule", "show", "priority", PRIORITY])?.contains(&format!("lookup {TABLE}")) {
        ip(&["-4", "rule", "del", "priority", PRIORITY, "fwmark", &mark(), "lookup", TABLE])?;
    }
    ip(&["-4", "route", "flush", "table", TABLE]).ok();
    Ok(())
}

#[derive(Debug, Deserialize)]
struct RouteEntry {
    dst: String,
    dev: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Link {
    ifindex: u32,
    ifname: String,
    linkinfo: Option<LinkInfo>,
}

#[derive(Debug, Deserialize)]
struct LinkInfo {
    info_kind: Option<String>,
}

/// The host-side veth of every pod on this node, found from the /32 routes
/// a veth-based CNI (or `porin lab`) installs: pod address → (name, index).
/// Routes over other devices (a tunnel to another node's pod, a bridge) are
/// not endpoints: porin chains onto CNIs that give each pod its own veth.
pub fn endpoint_interfaces() -> anyhow::Result<BTreeMap<Ipv4Addr, (String, u32)>> {
    let routes: Vec<RouteEntry> =
        serde_json::from_str(&ip(&["-4", "-j", "route", "show", "table", "main"])?).context("ip route")?;
    let links: Vec<Link> = serde_json::from_str(&ip(&["-j", "-d", "link", "show"])?).context("ip link")?;
    let is_veth =
        |link: &Link| link.linkinfo.as_ref().and_then(|info| info.info_kind.as_deref()) == Some("veth");
    let index: BTreeMap<&str, u32> =
        links.iter().filter(|l| is_veth(l)).map(|l| (l.ifname.as_str(), l.ifindex)).collect();
    Ok(routes
        .iter()
        .filter_map(|route| {
            // Host routes only: `ip` prints them as a bare address (or /32).
            let address = route.dst.strip_suffix("/32").unwrap_or(&route.dst).parse::<Ipv4Addr>().ok()?;
            let dev = route.dev.as_deref()?;
            (dev != "lo").then_some(())?;
            Some((address, (dev.to_string(), *index.get(dev)?)))
        })
        .collect())
}

#[derive(Debug, Deserialize)]
struct AddressInfo {
    local: String,
}

#[derive(Debug, Deserialize)]
struct LinkAddresses {
    addr_info: Vec<AddressInfo>,
}

/// The node's own IPv4 addresses: traffic from them is the `host` entity.
pub fn node_addresses() -> anyhow::Result<Vec<Ipv4Addr>> {
    let links: Vec<LinkAddresses> =
        serde_json::from_str(&ip(&["-4", "-j", "addr", "show"])?).context("ip addr")?;
    Ok(links.iter().flat_map(|l| &l.addr_info).filter_map(|a| a.local.parse().ok()).collect())
}
