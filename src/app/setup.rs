//! From the command line to a config: parse the flags, answer the flags that only print
//! something (`--completions SHELL`, `--man`, `--interface list`), resolve `--interface`
//! against the host's interfaces, and look up each `--peer`.
//!
//! The completion script and the man page are generated from the same clap definitions that
//! parse the flags, so they cannot drift from them.
//!
//! What this module must not do: start the program, or print anything but what a flag asks
//! for, clap-style usage errors (exit 2), and a peer that does not resolve (exit 1).

use super::cli::{CommonArgs, InterfaceArg, Located, Program};
use super::exit::{self, ExitCode};
use crate::net::iface::{self, IfaceAddr, InterfaceSpec};
use crate::net::peer;
use clap::error::ErrorKind;
use clap::CommandFactory;
use std::io::{self, Write};
use std::process;

/// The command as the completion script sees it: `--interface` offers `list` and this host's
/// interfaces by name and address (as they are when the script is made). Parsing never uses
/// it, so any other interface is still accepted.
fn with_interface_values(cmd: clap::Command) -> clap::Command {
    let mut values: Vec<String> = vec!["list".into()];
    for i in iface::list().unwrap_or_default() {
        for v in [i.name.clone(), i.addr.to_string()] {
            if !values.contains(&v) {
                values.push(v);
            }
        }
    }
    cmd.mut_arg("interface", |arg| {
        arg.value_parser(clap::builder::PossibleValuesParser::new(values))
    })
}

/// The program's config, or the status to exit with after a flag that only prints (`--help`,
/// `--man`, ...) or a usage error (printed).
pub fn configure<P: Program + CommandFactory>() -> Result<P::Config, process::ExitCode> {
    let cli = exit::parse_args::<P>()?;
    let setup = cli.common().setup.clone();
    if let Some(shell) = setup.completions {
        let mut cmd = with_interface_values(P::command());
        let name = cmd.get_name().to_string();
        clap_complete::generate(shell, &mut cmd, name, &mut io::stdout());
        return Err(ExitCode::Success.into());
    }
    if setup.man {
        return Err(printed(
            clap_mangen::Man::new(P::command()).render(&mut io::stdout()),
        ));
    }
    if let InterfaceArg::List = &cli.common().interface {
        return Err(print_interfaces());
    }
    // An IPv4 address needs no list; a host whose list cannot be read still runs with one.
    let interfaces = iface::list().unwrap_or_default();
    match locate(cli.common(), &interfaces) {
        Ok(found) => Ok(cli.into_config(found)),
        Err(NotFound::Interface(e)) => {
            let _ = P::command().error(ErrorKind::ValueValidation, e).print();
            Err(ExitCode::Usage.into())
        }
        Err(NotFound::Peer(e)) => {
            eprintln!("error: {e}");
            Err(ExitCode::Failure.into())
        }
    }
}

/// Why [`locate`] failed.
pub(super) enum NotFound {
    /// `--interface` names nothing usable (a usage error, exit 2).
    Interface(iface::ResolveError),
    /// A `--peer` does not resolve, or not to the interface's family (exit 1).
    Peer(String),
}

/// Looks up what `--interface` and `--peer` name. In unicast mode the family is the
/// interface's when it is an address, else the first peer's when that is one, else the
/// group's; no multicast is used, so IPv6 on the loopback is fine.
pub(super) fn locate(args: &CommonArgs, interfaces: &[IfaceAddr]) -> Result<Located, NotFound> {
    let InterfaceArg::Spec(spec) = &args.interface else {
        unreachable!("--interface list is answered before");
    };
    let unicast = !args.peers.is_empty();
    let family = match (unicast, spec, args.peers.first().and_then(|p| p.literal())) {
        (false, _, _) => args.group,
        (true, InterfaceSpec::Addr { addr, .. }, _) => *addr,
        (true, _, Some(peer)) => peer,
        (true, _, None) => args.group,
    };
    let interface =
        iface::resolve(spec, family, unicast, interfaces).map_err(NotFound::Interface)?;
    let peers = peer::resolve(&args.peers, &interface).map_err(NotFound::Peer)?;
    Ok(Located { interface, peers })
}

/// `--interface list`: every interface with its addresses, then exit 0.
fn print_interfaces() -> process::ExitCode {
    match iface::list() {
        Ok(all) => printed(writeln!(io::stdout(), "{}", listing(&all))),
        Err(e) => {
            eprintln!("error: cannot list the network interfaces: {e}");
            ExitCode::Failure.into()
        }
    }
}

/// What `--interface list` prints.
fn listing(all: &[IfaceAddr]) -> String {
    format!(
        "interfaces (give --interface a name or an address):\n{}",
        iface::format_list(all)
    )
}

/// Exit 0 after printing, or 1 when stdout failed (not for a closed pipe: `| head` is fine).
fn printed(result: io::Result<()>) -> process::ExitCode {
    match result {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("error: cannot write to stdout: {e}");
            ExitCode::Failure.into()
        }
        _ => ExitCode::Success.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_names_the_flag_and_every_interface() {
        let all = [IfaceAddr {
            name: "lo".into(),
            index: 1,
            addr: "127.0.0.1".parse().expect("ip"),
        }];
        let text = listing(&all);
        assert!(text.starts_with("interfaces (give --interface"), "{text}");
        assert!(text.ends_with("  lo  127.0.0.1"), "{text}");
    }
}
