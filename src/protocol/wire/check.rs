//! The value checks of decoding (G6): everything a datagram says that no honest node sends
//! (counters above [`MAX_COUNTER`], ids of 0, names and lines over their limits or with control
//! characters, lists longer than any view, proposal or report holds) is refused here, so the
//! state machines may rely on it.
//!
//! Pure: a message in, a reason out. Parsing is the parent module's.

use super::{Msg, Peer, MAX_PEERS_PER_DATAGRAM};
use crate::protocol::limits::{
    is_clean_name, is_clean_text, MAX_ATTEMPTS, MAX_COUNTER, MAX_LINE_BYTES, MAX_MEMBERS,
    MAX_NAME_BYTES, MAX_PACK_RECORDS, MAX_RTR, MAX_SERVERS, MAX_TOKEN_TIMEOUT_MS, MAX_VIEW_PARTS,
};
use crate::protocol::token_ring::Token;
use crate::protocol::types::{ChatRecord, Epoch, GroupId, Member, ServerId};
use crate::protocol::vote::SessionRef;

/// Rejects values that no honest node sends; the state machines may then rely on them
/// (no overflow on `+ 1`, no absurd timers, names and lines within their limits).
pub(super) fn check_values(msg: &Msg) -> Result<(), String> {
    match msg {
        Msg::Hello {
            name, delivered, ..
        } => check_name(name).and(check_counter("delivered", delivered.0)),
        Msg::Leave { .. } => Ok(()),
        Msg::Refuse { reason, .. } => check_printable("reason", reason),
        Msg::Gather {
            epoch,
            part,
            parts,
            members,
            server,
            group,
            ..
        } => check_ring_epoch(*epoch)
            .and(check_part(*part, *parts))
            .and(check_member_count(members.len()))
            .and(check_ids(*server, *group)),
        Msg::Wake { epoch, hop, .. } => check_ring_epoch(*epoch).and(check_counter("hop", *hop)),
        Msg::TokenAck { epoch, hop, .. } | Msg::Suspect { epoch, hop, .. } => {
            check_ring_epoch(*epoch).and(check_counter("hop", *hop))
        }
        Msg::AskAru { epoch, seq, .. } => check_ring_epoch(*epoch).and(check_counter("seq", seq.0)),
        Msg::Aru { epoch, aru, .. } => check_ring_epoch(*epoch).and(check_counter("aru", aru.0)),
        Msg::Report {
            epoch,
            name,
            view_epoch,
            aru,
            delivered,
            group,
            promised,
            primary,
            attempts,
            ..
        } => {
            check_name(name)?;
            check_counters(&[
                ("epoch", epoch.0),
                ("view epoch", view_epoch.0),
                ("aru", aru.0),
                ("delivered", delivered.0),
                ("promised epoch", promised.epoch.0),
            ])?;
            check_ids(promised.server, *group)?;
            if attempts.len() > MAX_ATTEMPTS {
                return Err(format!("{} attempts", attempts.len()));
            }
            primary.iter().chain(attempts).try_for_each(check_session)
        }
        Msg::Propose {
            epoch,
            part,
            parts,
            members,
            servers,
            cut,
            server,
            group,
            base,
            dead,
            ..
        } => {
            check_counters(&[("epoch", epoch.0), ("cut", cut.0), ("base", base.0)])?;
            check_part(*part, *parts)?;
            check_view_members(members, servers)?;
            check_ids(*server, *group)?;
            if dead.len() > MAX_ATTEMPTS {
                return Err(format!("{} dead attempts", dead.len()));
            }
            dead.iter()
                .try_for_each(|e| check_counter("dead epoch", e.0))
        }
        Msg::Accept { epoch, .. } => check_ring_epoch(*epoch),
        Msg::SessionRequest { epoch, .. } => check_counter("epoch", epoch.0),
        Msg::View {
            epoch,
            part,
            parts,
            members,
            servers,
            cut,
            high,
            token_timeout_ms,
            server,
            group,
        } => {
            check_counters(&[("epoch", epoch.0), ("cut", cut.0), ("high", high.0)])?;
            check_part(*part, *parts)?;
            check_view_members(members, servers)?;
            check_ids(*server, *group)?;
            check_token_timeout(*token_timeout_ms)
        }
        Msg::Beacon {
            epoch,
            cut,
            high,
            token_timeout_ms,
            members,
            server,
            group,
            ..
        } => {
            check_counters(&[("epoch", epoch.0), ("cut", cut.0), ("high", high.0)])?;
            check_member_count(usize::try_from(*members).unwrap_or(usize::MAX))?;
            check_ids(*server, *group)?;
            check_token_timeout(*token_timeout_ms)
        }
        Msg::ViewRequest { epoch, .. } => check_counter("epoch", epoch.0),
        Msg::Token(t) => check_token(t),
        Msg::Data { epoch, group, recs } => check_ring_epoch(*epoch)
            .and(check_group(*group))
            .and(check_pack(recs)),
        Msg::Fetch { lo, hi, .. } => check_counters(&[("lo", lo.0), ("hi", hi.0)]),
        Msg::History { records, .. } => records.iter().try_for_each(check_record),
        Msg::Peers { peers, .. } => check_peers(peers),
    }
}

/// At most [`MAX_PEERS_PER_DATAGRAM`] addresses, none that a node could have sent from.
fn check_peers(peers: &[Peer]) -> Result<(), String> {
    if peers.len() > MAX_PEERS_PER_DATAGRAM {
        return Err(format!("{} peers", peers.len()));
    }
    match peers
        .iter()
        .find(|p| p.addr.port() == 0 || p.addr.ip().is_unspecified() || p.addr.ip().is_multicast())
    {
        Some(p) => Err(format!("peer address {}", p.addr)),
        None => Ok(()),
    }
}

/// The token's slots and requests came as offsets below `seq`, each checked to be at most
/// `seq` when the token was decoded (see [`Token`]), so they are counters if `seq` is one.
fn check_token(t: &Token) -> Result<(), String> {
    check_ring_epoch(t.epoch)?;
    check_counters(&[("hop", t.hop), ("seq", t.seq.0), ("safe", t.safe.0)])?;
    if t.arus.is_empty() || t.arus.len() > MAX_MEMBERS {
        return Err(format!("{} aru slots", t.arus.len()));
    }
    if t.rtr.len() > MAX_RTR {
        return Err(format!("{} retransmission requests", t.rtr.len()));
    }
    Ok(())
}

/// A server id and a chat id: never 0, at most [`MAX_COUNTER`] (every sender draws them so).
fn check_ids(server: ServerId, group: GroupId) -> Result<(), String> {
    if server.0 == 0 {
        return Err("server id 0".into());
    }
    check_counter("server id", server.0).and(check_group(group))
}

fn check_group(group: GroupId) -> Result<(), String> {
    if group.0 == 0 {
        return Err("chat id 0".into());
    }
    check_counter("chat id", group.0)
}

/// A view's or proposal's members (names included) and its servers, within their limits.
fn check_view_members(members: &[Member], servers: &[ServerId]) -> Result<(), String> {
    check_member_count(members.len())?;
    members.iter().try_for_each(|m| check_name(&m.name))?;
    if servers.is_empty() || servers.len() > MAX_SERVERS {
        return Err(format!("{} servers", servers.len()));
    }
    servers.iter().try_for_each(|s| match s.0 {
        0 => Err("server id 0".to_string()),
        id => check_counter("server id", id),
    })
}

/// A session as a report names it.
fn check_session(s: &SessionRef) -> Result<(), String> {
    check_counters(&[("session epoch", s.epoch.0), ("session cut", s.cut.0)])?;
    let voters = usize::try_from(s.voters).unwrap_or(usize::MAX);
    if s.server.0 == 0 || s.members > s.voters || voters > MAX_MEMBERS + MAX_SERVERS {
        return Err(format!("a session of {} voters", s.voters));
    }
    check_counter("session server", s.server.0)
}

/// A part index within its count, and a count that some honest view or gather could need.
fn check_part(part: u32, parts: u32) -> Result<(), String> {
    if parts == 0 || parts > MAX_VIEW_PARTS || part >= parts {
        return Err(format!("part {part} of {parts}"));
    }
    Ok(())
}

fn check_member_count(n: usize) -> Result<(), String> {
    if n > MAX_MEMBERS {
        return Err(format!("{n} members"));
    }
    Ok(())
}

/// Members add the token timeout to the clock, so an absurd value must not reach them.
fn check_token_timeout(ms: u64) -> Result<(), String> {
    if ms > MAX_TOKEN_TIMEOUT_MS {
        return Err(format!("token timeout of {ms} ms"));
    }
    Ok(())
}

/// A data pack: not empty, no more records than fit one datagram, seqs strictly increasing
/// (so no seq twice), and every record valid.
fn check_pack(recs: &[ChatRecord]) -> Result<(), String> {
    if recs.is_empty() || recs.len() > MAX_PACK_RECORDS {
        return Err(format!("a pack of {} records", recs.len()));
    }
    if recs.windows(2).any(|w| w[0].seq >= w[1].seq) {
        return Err("a pack out of seq order".into());
    }
    recs.iter().try_for_each(check_record)
}

fn check_record(rec: &ChatRecord) -> Result<(), String> {
    check_counter("seq", rec.seq.0)?;
    check_name(&rec.name)?;
    if rec.text.len() > MAX_LINE_BYTES {
        return Err(format!("a line of {} bytes", rec.text.len()));
    }
    check_printable("text", &rec.text)
}

/// The epoch of a ring: the first view is epoch 1, and epoch 0 (a server that never
/// installed a view) has no ring, so no token, message or gather can belong to it.
fn check_ring_epoch(epoch: Epoch) -> Result<(), String> {
    if epoch.0 == 0 {
        return Err("epoch 0 has no ring".into());
    }
    check_counter("epoch", epoch.0)
}

fn check_counters(fields: &[(&str, u64)]) -> Result<(), String> {
    fields
        .iter()
        .try_for_each(|(what, v)| check_counter(what, *v))
}

fn check_counter(what: &str, value: u64) -> Result<(), String> {
    if value > MAX_COUNTER {
        return Err(format!("{what} {value} is above {MAX_COUNTER}"));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_BYTES {
        return Err(format!("a name of {} bytes", name.len()));
    }
    if !is_clean_name(name) {
        return Err("control characters in a name".into());
    }
    Ok(())
}

/// Free text from a peer (a line, a refusal): see [`is_clean_text`].
fn check_printable(what: &str, s: &str) -> Result<(), String> {
    if !is_clean_text(s) {
        return Err(format!("control characters in a {what}"));
    }
    Ok(())
}
