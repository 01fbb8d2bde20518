//! The kernel side of an exception port, configured over rtnetlink (safe Rust, no FFI):
//! the interface gets the port's MAC and IPv4 address/prefix, is set up, and gets a
//! default route via the port's gateway when one is set — what `ip link set`, `ip addr
//! add` and `ip route add` would do by hand.

use crate::config::Ipv4Cidr;
use anyhow::{anyhow, bail, Context};
use futures_util::TryStreamExt;
use rtnetlink::{LinkUnspec, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use tutti_dataplane::wire::eth::MacAddr;

/// What a kernel interface is to be given.
pub struct KernelSide<'a> {
    pub iface: &'a str,
    pub mac: MacAddr,
    pub ipv4: Ipv4Cidr,
    pub gateway: Option<Ipv4Addr>,
}

/// A netlink error as the errno text the kernel meant ("Operation not permitted", ...).
fn reason(e: rtnetlink::Error) -> anyhow::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => {
            match m.code {
                Some(code) => {
                    let err = std::io::Error::from_raw_os_error(-code.get());
                    if err.kind() == std::io::ErrorKind::PermissionDenied {
                        anyhow!("{err} (configuring a kernel interface needs CAP_NET_ADMIN: run as root)")
                    } else {
                        anyhow!(err)
                    }
                }
                None => anyhow!("netlink error"),
            }
        }
        other => anyhow!(other),
    }
}

/// True when an interface called `iface` exists in this network namespace.
pub fn iface_exists(iface: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(iface).exists()
}

/// Configure `side.iface`: MAC, link up, address, default route.
pub fn configure(side: &KernelSide<'_>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for netlink")?;
    rt.block_on(configure_async(side))
}

async fn configure_async(side: &KernelSide<'_>) -> anyhow::Result<()> {
    let (conn, handle, _) = rtnetlink::new_connection().context("opening a netlink socket")?;
    let conn = tokio::spawn(conn);
    let iface = side.iface;
    let result = async {
        let link = handle
            .link()
            .get()
            .match_name(iface.to_string())
            .execute()
            .try_next()
            .await
            .map_err(reason)
            .with_context(|| format!("looking up interface {iface}"))?;
        let Some(link) = link else {
            bail!("interface {iface} was not created by the exception device");
        };
        let index = link.header.index;
        handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .address(side.mac.0.to_vec())
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(reason)
            .with_context(|| format!("setting {iface}'s MAC to {} and the link up", side.mac))?;
        handle
            .address()
            .add(index, IpAddr::V4(side.ipv4.addr), side.ipv4.prefix_len)
            .execute()
            .await
            .map_err(reason)
            .with_context(|| format!("adding {} to {iface}", side.ipv4))?;
        if let Some(gw) = side.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
                .gateway(gw)
                .output_interface(index)
                .build();
            handle
                .route()
                .add(route)
                .execute()
                .await
                .map_err(reason)
                .with_context(|| format!("adding a default route via {gw} on {iface}"))?;
        }
        Ok(())
    }
    .await;
    conn.abort();
    result
}
