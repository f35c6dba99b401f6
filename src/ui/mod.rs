//! What the user sees and types: the display of messages and events (text or JSON), and the
//! terminal line editor.

pub mod authors;
pub mod display;
pub mod log_notices;
pub mod terminal;
