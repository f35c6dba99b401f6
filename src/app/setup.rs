//! From the command line to a config: parse the flags, answer the flags that only print
//! something (`--completions SHELL`, `--man`, `--interface list`), and resolve `--interface`
//! against the host's interfaces.
//!
//! The completion script and the man page are generated from the same clap definitions that
//! parse the flags, so they cannot drift from them.
//!
//! What this module must not do: start the program, or print anything but what a flag asks
//! for and clap-style usage errors (exit 2).

use super::cli::{InterfaceArg, Program};
use super::exit::{self, ExitCode};
use crate::net::iface::{self, IfaceAddr};
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
    let spec = match &cli.common().interface {
        InterfaceArg::List => return Err(print_interfaces()),
        InterfaceArg::Spec(spec) => spec.clone(),
    };
    // An IPv4 address needs no list; a host whose list cannot be read still runs with one.
    let interfaces = iface::list().unwrap_or_default();
    match iface::resolve(&spec, cli.common().group, &interfaces) {
        Ok(local) => Ok(cli.into_config(local)),
        Err(e) => {
            let _ = P::command().error(ErrorKind::ValueValidation, e).print();
            Err(ExitCode::Usage.into())
        }
    }
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
