//! Socket options of the proxy: `SO_REUSEPORT` listeners, `IP_TRANSPARENT`
//! for transparent mode, `IP_RECVORIGDSTADDR` for UDP, `SO_MARK` upstream.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

fn socket(addr: SocketAddr, kind: Type, protocol: Protocol, transparent: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if transparent {
        socket.set_ip_transparent(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A listening TCP socket; one per worker shares the address.
pub(super) fn tcp_listener(addr: SocketAddr, transparent: bool) -> io::Result<std::net::TcpListener> {
    let socket = socket(addr, Type::STREAM, Protocol::TCP, transparent)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// A UDP socket for a listener; with `transparent`, datagrams to any
/// address steered here arrive with their original destination.
pub(super) fn udp_listener(addr: SocketAddr, transparent: bool) -> io::Result<std::net::UdpSocket> {
    let socket = socket(addr, Type::DGRAM, Protocol::UDP, transparent)?;
    if transparent {
        setsockopt(&socket, sockopt::Ipv4OrigDstAddr, &true).map_err(io::Error::from)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A UDP socket bound to `local` even when it is not a local address
/// (transparent mode), to answer a client from its original destination.
pub(super) fn udp_bound(local: SocketAddr, transparent: bool) -> io::Result<UdpSocket> {
    let socket = socket(local, Type::DGRAM, Protocol::UDP, transparent)?;
    socket.bind(&local.into())?;
    UdpSocket::from_std(socket.into())
}

/// Connects upstream, with `SO_MARK` when the route carries one.
pub(super) async fn connect(addr: SocketAddr, mark: Option<u32>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(mark) = mark {
        SockRef::from(&socket).set_mark(mark)?;
    }
    socket.set_nodelay(true)?;
    socket.connect(addr).await
}

/// A UDP socket towards `upstream`, with `SO_MARK` when given.
pub(super) async fn udp_upstream(upstream: SocketAddr, mark: Option<u32>) -> io::Result<UdpSocket> {
    let local: SocketAddr = if upstream.is_ipv4() { "0.0.0.0:0".parse() } else { "[::]:0".parse() }
        .expect("valid wildcard address");
    let socket = UdpSocket::bind(local).await?;
    if let Some(mark) = mark {
        SockRef::from(&socket).set_mark(mark)?;
    }
    socket.connect(upstream).await?;
    Ok(socket)
}

/// Receives one datagram with its source and, on transparent sockets, its
/// original destination.
pub(super) fn recv_with_destination(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<SocketAddr>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(nix::libc::sockaddr_in);
    let message =
        recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())
            .map_err(io::Error::from)?;
    let source = message
        .address
        .and_then(|a| a.as_sockaddr_in().map(|v4| SocketAddr::V4(SocketAddrV4::from(*v4))))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without an IPv4 source"))?;
    let mut destination = None;
    for cmsg in message.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::Ipv4OrigDstAddr(addr) = cmsg {
            destination = Some(SocketAddr::V4(SocketAddrV4::from(SockaddrIn::from(addr))));
        }
    }
    Ok((message.bytes, source, destination))
}
