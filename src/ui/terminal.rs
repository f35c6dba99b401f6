//! Where the client's input lines come from and how its output reaches a terminal: a line
//! editor with history when stdin is a terminal (incoming messages print above the line being
//! typed, through the editor's external printer), plain buffered reads otherwise.
//!
//! No protocol and no commands here: this module only moves lines in and out.

use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};

/// A source of input lines.
pub enum LineSource {
    /// Piped or redirected stdin: read eagerly, so a paste or a pipe is taken in batches.
    Plain(BufReader<Box<dyn Read + Send>>),
    /// A terminal: a line editor with history.
    Editor(Box<DefaultEditor>),
}

impl LineSource {
    /// The editor when stdin and stdout are terminals (and `interactive` allows it), else
    /// plain reads of stdin.
    pub fn stdin(interactive: bool) -> LineSource {
        if interactive && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            match DefaultEditor::new() {
                Ok(editor) => return LineSource::Editor(Box::new(editor)),
                Err(e) => log::warn!("no line editor ({e}); reading stdin plainly"),
            }
        }
        let stdin: Box<dyn Read + Send> = Box::new(std::io::stdin());
        LineSource::Plain(BufReader::with_capacity(1 << 16, stdin))
    }

    /// The next line without its ending; `None` at EOF (or Ctrl-D / Ctrl-C in the editor).
    /// Invalid UTF-8 is replaced rather than fatal.
    pub fn next_line(&mut self) -> std::io::Result<Option<String>> {
        match self {
            LineSource::Plain(input) => read_line(input),
            LineSource::Editor(editor) => match editor.readline("> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Ok(Some(line))
                }
                Err(ReadlineError::Eof | ReadlineError::Interrupted) => Ok(None),
                Err(ReadlineError::Io(e)) => Err(e),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            },
        }
    }

    /// Whether a whole line is already buffered (more lines of a paste or a pipe).
    pub fn has_buffered_line(&self) -> bool {
        match self {
            LineSource::Plain(input) => input.buffer().contains(&b'\n'),
            LineSource::Editor(_) => false,
        }
    }

    /// A printer that writes above the line being edited, for the output side.
    pub fn printer(&mut self) -> Option<Box<dyn ExternalPrinter + Send>> {
        match self {
            LineSource::Editor(editor) => match editor.create_external_printer() {
                Ok(p) => Some(Box::new(p)),
                Err(e) => {
                    log::warn!("no external printer ({e}); output may cross the prompt");
                    None
                }
            },
            LineSource::Plain(_) => None,
        }
    }
}

fn read_line(input: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    if input.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Where output lines go: a stream, or the editor's external printer.
pub enum LineOut {
    /// A stream (stdout).
    Stream(Box<dyn Write + Send>),
    /// Above the prompt of a line editor.
    Terminal(Box<dyn ExternalPrinter + Send>),
}

impl LineOut {
    /// Writes one line (a stream is flushed by [`LineOut::flush`]). A closed stdout (a pipe
    /// whose reader went away) must not kill the node, so errors are ignored.
    pub fn line(&mut self, line: &str) {
        match self {
            LineOut::Stream(out) => {
                let _ = out
                    .write_all(line.as_bytes())
                    .and_then(|()| out.write_all(b"\n"));
            }
            LineOut::Terminal(printer) => {
                let _ = printer.print(format!("{line}\n"));
            }
        }
    }

    /// Pushes buffered lines out.
    pub fn flush(&mut self) {
        if let LineOut::Stream(out) = self {
            let _ = out.flush();
        }
    }
}

/// Whether stdout is a terminal (a person reads it, rather than a script).
pub fn on_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether to colour output: stdout is a terminal and `NO_COLOR` is not set.
pub fn color_wanted() -> bool {
    on_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_lose_their_endings_and_bad_utf8_is_replaced() {
        let data: Box<dyn Read + Send> = Box::new(&b"one\r\ntwo\n\xffthree"[..]);
        let mut src = LineSource::Plain(BufReader::new(data));
        assert_eq!(src.next_line().unwrap().as_deref(), Some("one"));
        assert!(src.has_buffered_line());
        assert_eq!(src.next_line().unwrap().as_deref(), Some("two"));
        assert_eq!(src.next_line().unwrap().as_deref(), Some("\u{fffd}three"));
        assert_eq!(src.next_line().unwrap(), None);
    }
}
