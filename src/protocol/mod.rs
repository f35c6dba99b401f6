//! The protocol, pure: the vocabulary, the limits, the datagram format, the hold-back queue,
//! and the two state machines (a client's [`member`], the server's [`coordinator`]) with the
//! outputs and events they hand their driver.
//!
//! Nothing in here reads the clock, a socket, a file or a global RNG: time comes in as a
//! parameter and effects go out as [`events::Output`] values, so the simulation tests can
//! drive many nodes deterministically.

pub mod canonical;
pub mod coordinator;
pub mod events;
pub mod fetch;
pub mod limits;
pub mod member;
pub mod order;
pub mod parts;
pub mod peers;
pub mod quorum;
pub mod rtt;
pub mod timer;
/// The token and the holder's rules. The file sits at the crate root, where the design card
/// names it; it is part of the pure protocol.
#[path = "../token_ring.rs"]
pub mod token_ring;
pub mod types;
pub mod vote;
pub mod wire;
