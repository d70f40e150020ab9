//! ClusterIPs for the lab's Services, allocated as kubeadm's API server
//! does: from 10.96.0.0/12, where 10.96.0.1 is the `kubernetes` Service
//! and 10.96.0.10 the cluster DNS (`kube-system/kube-dns`). The lab writes
//! the address into the stored Service, as the API server would, and keeps
//! it in the state so that a Service keeps its address across applies.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::bail;

/// The `kubernetes` Service's address.
pub(super) const KUBERNETES: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// The cluster DNS Service's address, and which Service that is.
const DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
pub(super) const DNS_SERVICE: &str = "kube-system/kube-dns";
/// Other Services get the first free address from here to the range's end.
const FIRST: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const LAST: Ipv4Addr = Ipv4Addr::new(10, 111, 255, 254);

/// The ClusterIP of Service `key` (`namespace/name`) whose manifest asks
/// for `requested` (`spec.clusterIP`): the requested address, the one it
/// had, or a new one; `None` for a headless Service. `allocated` (Service
/// → address) is updated.
pub(super) fn allocate(
    allocated: &mut BTreeMap<String, Ipv4Addr>,
    key: &str,
    requested: Option<&str>,
) -> anyhow::Result<Option<Ipv4Addr>> {
    let taken = |address: Ipv4Addr| {
        address == KUBERNETES || allocated.iter().any(|(other, held)| other != key && *held == address)
    };
    let address = match requested.filter(|r| !r.is_empty()) {
        Some("None") => {
            allocated.remove(key);
            return Ok(None);
        }
        Some(text) => {
            let Ok(address) = text.parse::<Ipv4Addr>() else {
                bail!("Service {key}: spec.clusterIP `{text}` is not an IPv4 address");
            };
            if taken(address) {
                bail!("Service {key}: spec.clusterIP {address} is already allocated");
            }
            address
        }
        None => match allocated.get(key) {
            Some(address) => *address,
            None if key == DNS_SERVICE && !taken(DNS) => DNS,
            None => {
                let free = (u32::from(FIRST)..=u32::from(LAST)).map(Ipv4Addr::from).find(|a| !taken(*a));
                match free {
                    Some(address) => address,
                    None => bail!("Service {key}: no ClusterIP left in 10.96.0.0/12"),
                }
            }
        },
    };
    allocated.insert(key.to_string(), address);
    Ok(Some(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_kubeadms_and_stable() {
        let mut allocated = BTreeMap::new();
        let mut get = |key: &str, requested: Option<&str>| allocate(&mut allocated, key, requested);
        assert_eq!(get("backend/api", None).unwrap(), Some(Ipv4Addr::new(10, 96, 0, 11)));
        assert_eq!(get(DNS_SERVICE, None).unwrap(), Some(DNS));
        assert_eq!(get("db/postgres", Some("")).unwrap(), Some(Ipv4Addr::new(10, 96, 0, 12)));
        // Applied again: the same address.
        assert_eq!(get("backend/api", None).unwrap(), Some(Ipv4Addr::new(10, 96, 0, 11)));
        assert_eq!(get("a/own", Some("10.100.0.5")).unwrap(), Some(Ipv4Addr::new(10, 100, 0, 5)));
        assert!(get("a/clash", Some("10.100.0.5")).is_err());
        assert!(get("a/kubernetes", Some("10.96.0.1")).is_err());
        assert_eq!(get("backend/api", Some("None")).unwrap(), None, "headless");
        assert_eq!(get("x/next", None).unwrap(), Some(Ipv4Addr::new(10, 96, 0, 11)), "freed");
    }
}
