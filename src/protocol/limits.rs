//! Every size and range limit of the protocol in one place, and the one rule for which
//! characters a name or a line may hold. The decoder, the prompt, the coordinator's admission
//! check and the storage readers all take their numbers from here.
//!
//! Constants and pure predicates only: no I/O, no types beyond `str`.

/// Protocol version carried in every datagram as `"v"`.
pub const VERSION: u64 = 1;
/// Largest datagram on the wire, sealed or not, so that datagrams survive a real LAN's MTU
/// unfragmented: 1428 bytes with IPv4 headers, 1448 with IPv6, under Ethernet's 1500 (why not
/// IPv6's 1280 minimum: docs/PROTOCOL.md). A larger one is dropped unread.
pub const MAX_DATAGRAM_BYTES: usize = 1400;
/// Bytes that sealing (`--key-file`) adds to a datagram: a format byte, a 12-byte nonce and a
/// 16-byte tag. The sealing code checks at compile time that it adds exactly this.
pub const SEAL_OVERHEAD_BYTES: usize = 1 + 12 + 16;
/// Largest encoded message. It leaves room for sealing, so every message fits one datagram
/// whether or not a key is used.
pub const MAX_PLAINTEXT_BYTES: usize = MAX_DATAGRAM_BYTES - SEAL_OVERHEAD_BYTES;
/// Largest sequence number, epoch or hop count accepted from the wire: 2^53 - 1, the largest
/// integer that every JSON reader keeps exact. A group that changed its view every
/// millisecond would take 285 years to get there, so a larger value is garbage or an attack;
/// the bound also keeps every `+ 1` in the state machines from overflowing.
pub const MAX_COUNTER: u64 = (1 << 53) - 1;
/// Largest token timeout a view may announce, in ms: the 24-hour cap of the duration flags.
/// Members add it to the clock, so an absurd value must not reach them.
pub const MAX_TOKEN_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// Largest chat line, in bytes of UTF-8 text. A longer line is refused at the prompt.
pub const MAX_LINE_BYTES: usize = 1000;
/// Largest display name, in bytes.
pub const MAX_NAME_BYTES: usize = 32;
/// Largest ring. A join beyond it is refused. A view of this many members with the longest
/// names spans several datagrams ([`MAX_VIEW_PARTS`]); the token carries one slot per member
/// and still fits one datagram because the slots travel as lags below `seq`
/// ([`MAX_IN_FLIGHT`]).
pub const MAX_MEMBERS: usize = 128;
/// Most datagrams one view, proposal or gather is split into. [`MAX_MEMBERS`] members whose
/// names take the most bytes once escaped (32 quotes each) fill 16 view parts, or 19 parts of
/// an echoed proposal with every list full; a part count above this is garbage.
pub const MAX_VIEW_PARTS: u32 = 24;
/// Flow control, as in Totem: a holder stamps new lines only while `seq - safe` is below this.
/// Every `aru` slot and every retransmission request lies within it, so the token, which
/// carries them as offsets below `seq`, stays small for a full ring.
pub const MAX_IN_FLIGHT: u64 = 4096;
/// Most records one `Data` datagram (a pack) carries. The smallest record any node could
/// send (empty name and text, one-digit numbers) takes 134 bytes encoded, so at most 9 fit
/// [`MAX_PLAINTEXT_BYTES`]; a pack of more than this is garbage.
pub const MAX_PACK_RECORDS: usize = 10;
/// Most retransmission requests a token carries at once.
pub const MAX_RTR: usize = 32;
/// Most servers a view lists. Two or three run a chat that survives any one failure; the list
/// travels in every part of a view and proposal, so it stays short.
pub const MAX_SERVERS: usize = 5;
/// Most undecided attempts a vote keeps (see [`crate::protocol::vote`]), each named in the
/// node's reports, which must fit one datagram. It takes that many proposals in a row whose
/// server died before installing them; a vote that would need more accepts no proposal
/// until one of them is settled.
pub const MAX_ATTEMPTS: usize = 6;

/// Whether a chat line (or any other free text from a peer) is free of control characters.
/// A tab is allowed; anything else would let a datagram rewrite other users' terminals.
pub fn is_clean_text(text: &str) -> bool {
    // Every record of every pack passes here: ASCII text, the common case, is checked in one
    // branch-free pass over its bytes (the control characters of ASCII are its only bytes
    // below 0x20, and 0x7f); text with other characters goes the long way.
    let (control, wide) = text.bytes().fold((false, false), |(control, wide), b| {
        let c = ((b < 0x20) & (b != b'\t')) | (b == 0x7f);
        (control | c, wide | (b >= 0x80))
    });
    if !wide {
        return !control;
    }
    !text.chars().any(|c| c.is_control() && c != '\t')
}

/// Whether a display name is free of control characters, tab included: a name is shown in
/// columns and lists, where a tab would misalign them.
pub fn is_clean_name(name: &str) -> bool {
    !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_shortcut_agrees_with_the_character_check() {
        for c in (0..=0xffu32).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            let slow = !text.chars().any(|c| c.is_control() && c != '\t');
            assert_eq!(is_clean_text(&text), slow, "{c:?}");
        }
    }

    #[test]
    fn g6_tabs_are_text_but_not_names_and_escapes_are_neither() {
        assert!(is_clean_text("a\tb"));
        assert!(!is_clean_name("a\tb"));
        for bad in ["\u{1b}[2J", "a\nb", "bell\u{7}"] {
            assert!(!is_clean_text(bad) && !is_clean_name(bad), "{bad:?}");
        }
        assert!(is_clean_name("élan 42"));
    }
}
