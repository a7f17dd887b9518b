//! Addresses, subnets and VXLAN ids: pure bookkeeping over what the store already holds.
//! Nothing is kept between rounds; what is in use is read off the objects each time, so
//! an address is free again as soon as nothing in the store names it.

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Swarm's default address pool: overlay subnets are /24s of 10.0.0.0/8.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
pub const DEFAULT_SUBNET_LEN: u8 = 24;
/// Swarm's first overlay VXLAN id; lower ones are left to the host's own use.
pub const FIRST_VNI: u32 = 4097;
/// VXLAN ids are 24 bits.
const MAX_VNI: u32 = (1 << 24) - 1;

/// The addresses of one subnet.
pub struct Space {
    subnet: Ipv4Net,
    used: HashSet<Ipv4Addr>,
}

impl Space {
    pub fn new(subnet: Ipv4Net) -> Space {
        Space {
            subnet: subnet.trunc(),
            used: HashSet::new(),
        }
    }

    /// Marks `addr` taken; an address outside the subnet is ignored.
    pub fn reserve(&mut self, addr: Ipv4Addr) {
        if self.subnet.contains(&addr) {
            self.used.insert(addr);
        }
    }

    pub fn release(&mut self, addr: Ipv4Addr) {
        self.used.remove(&addr);
    }

    /// The lowest free host address, with the subnet's prefix; none when it is full.
    pub fn allocate(&mut self) -> Option<Ipv4Net> {
        let addr = self.subnet.hosts().find(|a| !self.used.contains(a))?;
        self.used.insert(addr);
        Ipv4Net::new(addr, self.subnet.prefix_len()).ok()
    }
}

/// The first free subnet of `len` bits in `pool` that overlaps none of `taken`.
pub fn free_subnet(pool: Ipv4Net, len: u8, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    pool.subnets(len)
        .ok()?
        .find(|s| !taken.iter().any(|t| overlaps(s, t)))
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The lowest VXLAN id from [`FIRST_VNI`] that none of `taken` has.
pub fn free_vni(taken: &BTreeSet<u32>) -> Option<u32> {
    (FIRST_VNI..=MAX_VNI).find(|v| !taken.contains(v))
}

/// The gateway a subnet gets unless one was asked for: its first host address.
pub fn default_gateway(subnet: Ipv4Net) -> Option<Ipv4Addr> {
    subnet.hosts().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_skip_what_is_taken_and_end_when_full() {
        let mut space = Space::new(net("10.0.1.0/30"));
        space.reserve("10.0.1.1".parse().unwrap());
        space.reserve("192.168.0.1".parse().unwrap());
        assert_eq!(space.allocate(), Some(net("10.0.1.2/30")));
        assert_eq!(space.allocate(), None);
    }

    #[test]
    fn subnets_avoid_overlaps_of_any_size() {
        let pool = net(DEFAULT_POOL);
        let taken = [net("10.0.0.0/24"), net("10.0.1.0/24"), net("10.0.2.0/23")];
        assert_eq!(free_subnet(pool, 24, &taken), Some(net("10.0.4.0/24")));
        assert!(overlaps(&net("10.0.0.0/16"), &net("10.0.5.0/24")));
        assert!(!overlaps(&net("10.0.0.0/24"), &net("10.0.1.0/24")));
    }

    #[test]
    fn vnis_start_at_swarms_first() {
        let taken: BTreeSet<u32> = [4097, 4098, 5000].into();
        assert_eq!(free_vni(&taken), Some(4099));
        assert_eq!(free_vni(&BTreeSet::new()), Some(FIRST_VNI));
    }
}
