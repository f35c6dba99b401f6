//! mcast-chat: a group chat over UDP multicast.
pub mod checkpoint;
pub mod cli;
pub mod coordinator;
pub mod member;
pub mod net;
pub mod order;
pub mod output;
pub mod replica;
pub mod runtime;
pub mod token_ring;
pub mod types;
pub mod wire;
