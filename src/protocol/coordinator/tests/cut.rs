//! Unit tests of the cut and quorum rules at the server: which reports complete a cut, what
//! each reporter surely holds, and that a minority of the last primary's voters waits.

use super::*;

#[test]
fn g1_one_old_member_reporting_a_trusted_aru_completes_the_cut() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, epoch, proposed) = lose_token(&mut c, t0);
    assert_eq!((epoch, proposed), (Epoch(2), vec![id(0), id(1), id(2)]));
    // Member 0 did not restart: its aru (collected in epoch 1) covers all the ring delivered.
    v[0].holding(15, 12);
    v[1].up = false;
    v[2].up = false;
    let out = report_all(&mut c, &mut v, &[0], epoch, t1 + 10 * MS);
    assert!(fetches(&out).is_empty(), "members 1 and 2 may still answer");
    // The first report shortens the wait for the others to four times its delay (at least
    // 100 ms); then the silent ones are left out: the server and member 0 are two of the
    // four voters, the first server among them, and member 0's aru completes the cut.
    assert_eq!(c.poll_timeout(), Some(t1 + 110 * MS));
    let out = untimed(run_until(&mut c, t1 + 110 * MS));
    assert_eq!(fetches(&out), [(id(0), Seq(11), Seq(14))]);
    c.handle_datagram(t1 + 120 * MS, history(11..=14));
    assert_eq!(fetches(&drain(&mut c)), [(id(0), Seq(15), Seq(15))]);
    c.handle_datagram(t1 + 130 * MS, history([15]));
    let out = settle_now(&mut c, &mut v, t1 + 130 * MS);
    assert_eq!(views(&out), [(Epoch(2), vec![id(0)], Seq(15))]);
}

#[test]
fn g1_a_restarted_members_report_counts_only_what_it_delivered() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    // All three restarted: what they received but did not deliver is gone, so an aru of 20
    // proves nothing; their replicas hold 12, 11, 10.
    for (n, delivered) in [(0, 12), (1, 11), (2, 10)] {
        v[n].holding(20, delivered);
        v[n].restart();
    }
    let out = report_all(&mut c, &mut v, &[0, 1, 2], epoch, t1);
    assert_eq!(fetches(&out), [(id(0), Seq(11), Seq(12))]);
    c.handle_datagram(t1, history(11..=12));
    let out = settle_now(&mut c, &mut v, t1);
    assert_eq!(delivered(&out), [11, 12]);
    assert_eq!(
        views(&out),
        [(Epoch(2), vec![id(0), id(1), id(2)], Seq(12))]
    );
}

#[test]
fn g1_without_a_trusted_report_the_gather_waits_for_every_voter_however_long() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    // Members 0 and 1 restarted; member 2 may be alive behind a partition, holding delivered
    // messages above anything the reports show. The server and 0 and 1 are a quorum of the
    // four voters, but the cut is not complete without 2.
    v[0].restart();
    v[1].restart();
    v[2].up = false;
    report_all(&mut c, &mut v, &[0, 1], epoch, t1 + 10 * MS);
    let waiting = untimed(run_until(&mut c, t1 + 60 * TOKEN_TIMEOUT));
    assert!(installs(&waiting).is_empty());
    assert!(c.is_recovering());
    assert_eq!(waits(&waiting), [(3, 4)], "said once");
    let asked = gathers(&waiting);
    assert!(asked.len() > 10, "it keeps asking: {} gathers", asked.len());
    assert!(asked
        .iter()
        .all(|g| g == &(epoch, vec![id(0), id(1), id(2)])));
    // Member 2 comes back: the cut is complete at once.
    v[2].up = true;
    let t2 = t1 + 61 * TOKEN_TIMEOUT;
    let out = report_all(&mut c, &mut v, &[2], epoch, t2);
    assert_eq!(
        views(&out),
        [(Epoch(2), vec![id(0), id(1), id(2)], Seq(10))]
    );
}

#[test]
fn g1_a_server_alone_never_forms_a_view_while_the_ring_may_chat_on() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, _, _) = lose_token(&mut c, t0);
    // The whole ring is behind a partition, chatting on: the server and a joiner beside it
    // (no voter of epoch 1) are 1 of its 4 voters.
    v.iter_mut().for_each(|v| v.up = false);
    v.push(Voter::new(id(9)));
    c.handle_datagram(t1, hello(9));
    let t2 = t1 + 30 * TOKEN_TIMEOUT;
    let out = untimed(run_until(&mut c, t2));
    let out = settle(&mut c, &mut v, t2, out);
    assert!(installs(&out).is_empty(), "{:?}", views(&out));
    assert_eq!(waits(&out), [(1, 4)]);
    let waiting = out.iter().any(
        |o| matches!(o, Output::Send(Msg::Gather { waiting: Some(w), .. }) if w.reachable == 1),
    );
    assert!(waiting, "the gather tells the joiner why it waits");
    // Member 2 (which did not restart) is back: with it, 2 of 4 and the first server.
    v[2].up = true;
    let t3 = t2 + TOKEN_TIMEOUT;
    let out = untimed(run_until(&mut c, t3));
    let mut out = settle(&mut c, &mut v, t3, out);
    // Judged again a few round trips later, once the rest of its side could answer too.
    out.extend(run_with(&mut c, &mut v, t3 + TOKEN_TIMEOUT / 2));
    assert_eq!(
        views(&out).last().map(|v| v.1.clone()),
        Some(vec![id(2), id(9)])
    );
}

#[test]
fn g1_the_cut_is_the_most_any_reporter_holds_and_it_is_fetched_from_that_one() {
    let (mut c, mut v, t0, _) = ring(3, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    for (n, aru) in [(0, 12), (1, 18), (2, 15)] {
        v[n].view_epoch = Epoch(1);
        v[n].holding(aru, 10);
    }
    let out = report_all(&mut c, &mut v, &[0, 1, 2], epoch, t1);
    assert_eq!(fetches(&out), [(id(1), Seq(11), Seq(14))]);
    c.handle_datagram(t1, history(11..=14));
    // Member 1 alone holds 16..=18; member 2 also holds 15.
    assert_eq!(fetches(&drain(&mut c)), [(id(1), Seq(15), Seq(18))]);
    c.handle_datagram(t1, history(15..=18));
    let out = settle_now(&mut c, &mut v, t1);
    assert_eq!(installs(&out), [(Epoch(2), 3, Seq(18))]);
}

#[test]
fn g1_the_cut_never_goes_below_the_archive() {
    let (mut c, mut v, t0, _) = ring(2, 10);
    let (t1, epoch, _) = lose_token(&mut c, t0);
    v[0].holding(5, 5);
    v[1].holding(7, 3);
    let out = report_all(&mut c, &mut v, &[0, 1], epoch, t1);
    assert!(
        fetches(&out).is_empty(),
        "the archive holds more than any reporter"
    );
    assert_eq!(views(&out), [(Epoch(2), vec![id(0), id(1)], Seq(10))]);
}
