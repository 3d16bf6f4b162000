//! What a [`super::NetworkHandle`] asks of the event loop, and how the loop does it: each
//! [`Command`] is answered through its oneshot reply, by the module that owns the concern.

use super::event_loop::EventLoop;
use super::peers;
use super::{AddNodeMode, Command, NetworkError, behaviour};
use libp2p::{Multiaddr, PeerId};
use std::time::Instant;

impl EventLoop {
    /// Carries out one command and sends its reply.
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::PeerInfo(reply) => {
                let scoring = &self.scoring;
                let _ = reply.send(self.connections.peer_info(|peer| scoring.score(peer)));
            }
            Command::AddNode { addr, mode, reply } => {
                let _ = reply.send(self.add_node(addr, mode));
            }
            Command::Disconnect { peer, reply } => {
                let _ = reply.send(self.disconnect(peer));
            }
            Command::Ban {
                peer,
                duration,
                reason,
                reply,
            } => {
                let result = if peer == self.local_peer_id {
                    Err(NetworkError::SelfPeer(peer))
                } else {
                    self.scoring.ban(&mut self.swarm, peer, duration, reason);
                    Ok(())
                };
                let _ = reply.send(result);
            }
            Command::Unban { peer, reply } => {
                let result = if self.scoring.unban(&mut self.swarm, peer) {
                    self.discovery.retry(peer, Instant::now());
                    Ok(())
                } else {
                    Err(NetworkError::NotBanned(peer))
                };
                let _ = reply.send(result);
            }
            Command::ListBanned(reply) => {
                let _ = reply.send(self.scoring.list(&mut self.swarm));
            }
            Command::SetActive { active, reply } => {
                self.set_active(active);
                let _ = reply.send(self.active);
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::Request {
                peer,
                request,
                reply,
            } => self.requests.send(&mut self.swarm, peer, request, reply),
            Command::Report { peer, offense } => {
                self.scoring.punish(&mut self.swarm, peer, offense)
            }
        }
    }

    fn disconnect(&mut self, peer: PeerId) -> Result<(), NetworkError> {
        if self.swarm.is_connected(&peer) {
            let _ = self.swarm.disconnect_peer_id(peer);
            tracing::info!(%peer, "disconnecting peer on request");
            Ok(())
        } else {
            Err(NetworkError::NotConnected(peer))
        }
    }

    fn add_node(&mut self, addr: Multiaddr, mode: AddNodeMode) -> Result<(), NetworkError> {
        let (_, peer_id) = peers::split_p2p(&addr);
        if let Some(peer) = peer_id {
            if peer == self.local_peer_id {
                return Err(NetworkError::SelfPeer(peer));
            }
            if mode != AddNodeMode::Remove && self.scoring.is_banned(&peer) {
                return Err(NetworkError::Banned(peer));
            }
        }
        match mode {
            AddNodeMode::Add => {
                self.discovery.add(&addr, Instant::now());
                if let Some(peer) = peer_id {
                    self.handshake.forgive(&peer);
                }
                self.redial_static_peers();
                Ok(())
            }
            AddNodeMode::OneTry => {
                if !self.active {
                    return Err(NetworkError::Inactive);
                }
                if let Some(peer) = peer_id {
                    self.handshake.forgive(&peer);
                }
                self.discovery.dial_once(&mut self.swarm, addr)
            }
            AddNodeMode::Remove => {
                if self.discovery.remove(&addr) {
                    Ok(())
                } else {
                    Err(NetworkError::NotAdded(addr))
                }
            }
        }
    }

    fn set_active(&mut self, active: bool) {
        if active == self.active {
            return;
        }
        self.active = active;
        if active {
            tracing::info!("network activated");
            *self.swarm.behaviour_mut().limits.limits_mut() = behaviour::active_limits();
            self.discovery.reactivated(Instant::now());
        } else {
            tracing::info!("network deactivated: disconnecting every peer");
            *self.swarm.behaviour_mut().limits.limits_mut() = behaviour::inactive_limits();
            let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
            for peer in connected {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }
}
