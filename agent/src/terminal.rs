//! Console output that a game draws on a terminal (cursor addressing,
//! partial redraws, scroll regions) rendered into console lines.
//!
//! A server in a container has a TTY ([`crate::container`]), and some
//! games use it as a screen rather than as a stream of lines: Minetest's
//! `--terminal`, or any ncurses or JLine console, moves the cursor to a
//! row, rewrites part of it, scrolls a region of the screen and redraws a
//! status bar in place. Split at `\n`, such output is escape sequences and
//! fragments. [`Terminal`] feeds it through a real terminal emulator
//! (the `vt100` crate, itself built on `vte`, the parser Alacritty uses)
//! and turns the screen back into lines.
//!
//! ## What becomes a line
//!
//! A *row* of the screen is one console line, emitted exactly once, when
//! the game *finishes* it:
//!
//! - the cursor moves below it (a line feed, a cursor move to a lower
//!   row): every row above the cursor's new row that holds text not yet
//!   emitted is finished, top to bottom;
//! - it scrolls: a line feed at the bottom of the scroll region, `CSI S`/
//!   `CSI T`, reverse index, inserted or deleted lines; rows leaving the
//!   region are finished before they go.
//!
//! Once a row has been emitted it is *accounted*, and its text is kept.
//! When the game finishes it again:
//!
//! - with the same text (a redraw, whole or in part), nothing is emitted;
//! - with other text, the row is a new line if the game drew it from its
//!   start (it printed at or before the row's first character): a log
//!   line drawn over an old row, which curses does without erasing it
//!   first. The line is the row up to the last character printed, so
//!   what is left of the old row after it is not part of it;
//! - with other text printed further right, it is an update in place: a
//!   status bar's clock and counters, rewritten a few cells at a time
//!   (Minetest's, every second), never flood the console.
//!
//! A repaint that skips the unchanged start of a row is therefore not seen
//! as a new line. curses on an xterm-like `TERM` (what a container's TTY
//! says) scrolls with scroll regions instead, which is followed exactly.
//!
//! A row that becomes blank (erased, or scrolled in) is new again.
//! Accounting follows the rows as they scroll, so a row that moved up is
//! not mistaken for a new one. The row the cursor rests on (an input
//! prompt at the bottom) is not finished until the cursor leaves it
//! downwards or it scrolls, so a prompt and the command being typed into
//! it never become lines.
//!
//! Rows the game's own printing wrapped at the right margin are one line.
//! Trailing blanks are trimmed and blank rows emit nothing. The text is
//! plain: colours and attributes are not kept (the browser console shows
//! text, and a screen's colours are about its layout).
//!
//! The byte stream is also read by a `vte` parser of its own, one step
//! ahead of the emulator: it names each operation (a line feed, a cursor
//! move, a scroll) before the emulator applies it, which is how scrolls and
//! erasures are seen. The scroll region (`CSI r`) is followed here for the
//! same reason; everything else (where the cursor is, what a row holds)
//! is read from the emulator.
//!
//! ## Bounds
//!
//! The screen is fixed at [`ROWS`] × [`COLUMNS`], the size the Agent gives
//! a server's TTY, without scrollback: the emulator's memory is two
//! screens (main and alternate) of that size, whatever the game prints.
//! Both parsers are built without `std`, which bounds the escape strings
//! (OSC, DCS) they buffer to 1 KiB. A line is cut at the caller's byte
//! limit.

use std::num::NonZeroU16;

/// Rows of the terminal a server's console is drawn on: the TTY size the
/// Agent gives a container (and tells it in `LINES`), and the size of the
/// emulator rendering it.
pub const ROWS: u16 = 48;

/// Columns of the terminal a server's console is drawn on (see [`ROWS`]):
/// wide enough that a game wrapping its own output at the screen's width
/// (Minetest does) seldom has to.
pub const COLUMNS: u16 = 160;

/// The operation the last byte completed, as the look-ahead parser saw it.
#[derive(Debug, Default)]
enum Op {
    /// The byte completed nothing (inside a sequence or a UTF-8 character).
    #[default]
    None,
    /// A character printed at the cursor.
    Print(char),
    /// A C0 control.
    Control(u8),
    /// A control sequence: `CSI [private] params final`.
    Csi {
        private: Option<u8>,
        first: u16,
        second: u16,
        alternate_screen: bool,
        action: char,
    },
    /// An escape sequence without intermediates: `ESC final`.
    Escape(u8),
    /// Anything else (OSC, DCS, an escape with intermediates).
    Other,
}

/// Records the operation a byte completes.
#[derive(Debug, Default)]
struct Lookahead {
    op: Op,
}

impl vte::Perform for Lookahead {
    fn print(&mut self, c: char) {
        self.op = Op::Print(c);
    }

    fn execute(&mut self, byte: u8) {
        self.op = Op::Control(byte);
    }

    fn csi_dispatch(
        &mut self,
        params: &vte::Params,
        intermediates: &[u8],
        _ignore: bool,
        action: char,
    ) {
        let mut values = params.iter().map(|p| p.first().copied().unwrap_or(0));
        let first = values.next().unwrap_or(0);
        let second = values.next().unwrap_or(0);
        let private = intermediates.first().copied();
        let alternate_screen = private == Some(b'?')
            && params
                .iter()
                .any(|p| matches!(p.first(), Some(47 | 1047 | 1049)));
        self.op = Op::Csi {
            private,
            first,
            second,
            alternate_screen,
            action,
        };
    }

    fn esc_dispatch(&mut self, intermediates: &[u8], _ignore: bool, byte: u8) {
        self.op = if intermediates.is_empty() {
            Op::Escape(byte)
        } else {
            Op::Other
        };
    }

    fn osc_dispatch(&mut self, _params: &[&[u8]], _bell_terminated: bool) {
        self.op = Op::Other;
    }

    fn unhook(&mut self) {
        self.op = Op::Other;
    }
}

/// A scroll region: first and last row, inclusive, 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Region {
    top: u16,
    bottom: u16,
}

/// What is known of one row of the screen.
#[derive(Debug, Clone, Default)]
struct RowState {
    /// The row's text when it was last finished; `None` while the row is
    /// new (blank, or never finished).
    text: Option<String>,
    /// The first and last column printed on the row since then.
    printed: Option<(u16, u16)>,
}

/// How the rows of a region move.
#[derive(Debug, Clone, Copy)]
enum Shift {
    /// Rows `from..=to` move up by `by`; blank rows come in at `to`.
    Up { from: u16, to: u16, by: u16 },
    /// Rows `from..=to` move down by `by`; blank rows come in at `from`.
    Down { from: u16, to: u16, by: u16 },
}

/// A terminal emulator that emits each row a game finishes as a line (see
/// the module docs).
pub struct Terminal {
    emulator: vt100::Parser,
    lookahead: vte::Parser,
    op: Lookahead,
    rows: u16,
    cols: u16,
    /// The scroll region of the main and the alternate screen.
    regions: [Region; 2],
    /// Each row's accounting, per screen.
    accounted: [Vec<RowState>; 2],
    /// The start of a line wrapped at the right margin, waiting for its
    /// next row.
    carry: String,
    max_line_bytes: usize,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// A blank screen of [`ROWS`] × [`COLUMNS`]; lines are cut at
    /// `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        Self::with_size(ROWS, COLUMNS, max_line_bytes)
    }

    /// A blank screen of `rows` × `cols` (each at least 2 and 1).
    pub fn with_size(rows: u16, cols: u16, max_line_bytes: usize) -> Self {
        let rows = rows.max(2);
        let cols = cols.max(1);
        let size = |n: u16| NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN);
        let full = Region {
            top: 0,
            bottom: rows - 1,
        };
        Self {
            emulator: vt100::Parser::new(size(rows), size(cols), 0),
            lookahead: vte::Parser::new(),
            op: Lookahead::default(),
            rows,
            cols,
            regions: [full; 2],
            accounted: [
                vec![RowState::default(); usize::from(rows)],
                vec![RowState::default(); usize::from(rows)],
            ],
            carry: String::new(),
            max_line_bytes: max_line_bytes.max(1),
        }
    }

    /// Draws `bytes` and appends every row they finish to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        for byte in bytes {
            self.lookahead
                .advance(&mut self.op, std::slice::from_ref(byte));
            let op = std::mem::take(&mut self.op.op);
            if matches!(op, Op::None | Op::Other) {
                self.emulator.process(std::slice::from_ref(byte));
                continue;
            }
            self.step(&op, *byte, out);
        }
    }

    /// Which screen is shown: 0 main, 1 alternate.
    fn screen_index(&self) -> usize {
        usize::from(self.emulator.screen().alternate_screen())
    }

    fn cursor(&self) -> (u16, u16) {
        self.emulator.screen().cursor_position()
    }

    /// Applies the byte completing `op`, finishing the rows it finishes.
    fn step(&mut self, op: &Op, byte: u8, out: &mut Vec<String>) {
        let screen = self.screen_index();
        let region = self.regions[screen];
        let (row, col) = self.cursor();
        let in_region = (region.top..=region.bottom).contains(&row);
        // What the operation does to the rows, known before it happens.
        let shift = match *op {
            Op::Control(b'\n' | 0x0b | 0x0c) if in_region && row == region.bottom => {
                Some(Shift::Up {
                    from: region.top,
                    to: region.bottom,
                    by: 1,
                })
            }
            Op::Print(c) if in_region && row == region.bottom => {
                let width = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0) as u16;
                (width > 0 && col + width > self.cols).then_some(Shift::Up {
                    from: region.top,
                    to: region.bottom,
                    by: 1,
                })
            }
            Op::Escape(b'M') if (in_region && row == region.top) || row == 0 => Some(Shift::Down {
                from: region.top,
                to: region.bottom,
                by: 1,
            }),
            Op::Csi {
                private: None,
                first,
                action,
                ..
            } => {
                let by = first.max(1);
                match action {
                    'S' => Some(Shift::Up {
                        from: region.top,
                        to: region.bottom,
                        by,
                    }),
                    'T' => Some(Shift::Down {
                        from: region.top,
                        to: region.bottom,
                        by,
                    }),
                    'L' if in_region => Some(Shift::Down {
                        from: row,
                        to: region.bottom,
                        by,
                    }),
                    'M' if in_region => Some(Shift::Up {
                        from: row,
                        to: region.bottom,
                        by,
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        // Rows leaving the screen are finished while they are still there;
        // so is the cursor's row when a line feed scrolls it up.
        match shift {
            Some(Shift::Up { from, to, by }) => {
                match op {
                    Op::Control(_) => self.finish_above(region.top, row + 1, out),
                    // The cursor's row wraps onto the next: it is finished
                    // once it has moved up, as the start of a longer line.
                    Op::Print(_) => self.finish_above(region.top, row, out),
                    _ => {}
                }
                let leaving = from..from.saturating_add(by).min(to + 1);
                for r in leaving {
                    self.finish(r, out);
                }
            }
            Some(Shift::Down { from, to, by }) => {
                let first_leaving = to.saturating_add(1).saturating_sub(by).max(from);
                for r in first_leaving..=to {
                    self.finish(r, out);
                }
            }
            None => {}
        }

        self.emulator.process(&[byte]);

        if let Op::Escape(b'c') = op {
            // A full reset: a blank main screen, regions and all.
            self.regions = [self.full(); 2];
            self.accounted
                .iter_mut()
                .for_each(|rows| rows.fill(RowState::default()));
            self.carry.clear();
            return;
        }
        let after = self.screen_index();
        if after != screen {
            // Entering the alternate screen with 1049 clears it and resets
            // its region; either way, rows now blank are new.
            if let Op::Csi {
                alternate_screen: true,
                ..
            } = op
            {
                self.regions[after] = self.full();
            }
            self.refresh_blank_rows();
            return;
        }
        if let Op::Csi {
            private: None,
            first,
            second,
            action: 'r',
            ..
        } = *op
        {
            // DECSTBM, with the emulator's defaults and bounds.
            let top = first.max(1) - 1;
            let bottom = if second == 0 { self.rows } else { second }.min(self.rows) - 1;
            self.regions[screen] = if top < bottom {
                Region { top, bottom }
            } else {
                self.full()
            };
        }
        if let Some(shift) = shift {
            self.shift(screen, shift);
            if let Op::Print(_) = op {
                self.finish(row.saturating_sub(1), out);
            }
        }
        // Where the game printed on the cursor's row: a character, or a
        // repeated one (`CSI n b`, which curses uses for runs).
        let printed = match *op {
            Op::Print(c) => unicode_width::UnicodeWidthChar::width(c).unwrap_or(0) as u16,
            Op::Csi {
                private: None,
                first,
                action: 'b',
                ..
            } => first.max(1),
            _ => 0,
        };
        if printed > 0 {
            let (printed_row, after) = self.cursor();
            let first = after.saturating_sub(printed);
            let last = after.saturating_sub(1).min(self.cols - 1);
            if let Some(state) = self.accounted[screen].get_mut(usize::from(printed_row)) {
                state.printed = Some(match state.printed {
                    Some((a, b)) => (a.min(first), b.max(last)),
                    None => (first, last),
                });
            }
        }
        let (new_row, _) = self.cursor();
        if shift.is_none() && new_row > row {
            self.finish_above(row, new_row, out);
        }
        // Erasures can make a row blank: what comes there next is new.
        match op {
            Op::Csi { action: 'J', .. } => self.refresh_blank_rows(),
            Op::Csi {
                private: None,
                action: 'K' | 'X' | 'P',
                ..
            } => self.refresh_blank_row(new_row),
            _ => {}
        }
    }

    fn full(&self) -> Region {
        Region {
            top: 0,
            bottom: self.rows - 1,
        }
    }

    /// Finishes the rows from `from` up to (not including) `to`.
    fn finish_above(&mut self, from: u16, to: u16, out: &mut Vec<String>) {
        for r in from..to.min(self.rows) {
            self.finish(r, out);
        }
    }

    /// Emits row `r` if it holds a new line (see the module docs).
    fn finish(&mut self, r: u16, out: &mut Vec<String>) {
        let screen = self.screen_index();
        let Some(state) = self.accounted[screen].get(usize::from(r)) else {
            return;
        };
        if state.text.is_none() && state.printed.is_none() && self.carry.is_empty() {
            // A new row nothing was printed on: blank.
            return;
        }
        let cells = self.row_cells(r);
        let whole = cells.concat();
        let whole = whole.trim_end();
        let printed = state.printed;
        // Printing reached the right margin and went on below.
        let wraps = self.emulator.screen().row_wrapped(r)
            && printed.is_some_and(|(_, last)| last + 1 >= self.cols);
        let line = match (&state.text, printed) {
            _ if whole.is_empty() => None,
            (None, _) => Some(if wraps {
                cells.concat()
            } else {
                whole.to_owned()
            }),
            (Some(old), Some((first_printed, last_printed))) if old.as_str() != whole => {
                let start = cells.iter().position(|c| *c != " ").unwrap_or(0);
                (usize::from(first_printed) <= start).then(|| {
                    let drawn = cells[..=usize::from(last_printed).min(cells.len() - 1)].concat();
                    if wraps {
                        drawn
                    } else {
                        drawn.trim_end().to_owned()
                    }
                })
            }
            _ => None,
        };
        let state = &mut self.accounted[screen][usize::from(r)];
        state.printed = None;
        state.text = (!whole.is_empty()).then(|| whole.to_owned());
        if let Some(line) = &line {
            push_bounded(&mut self.carry, line, self.max_line_bytes);
        }
        if (line.is_some() || whole.is_empty()) && !wraps && !self.carry.is_empty() {
            out.push(std::mem::take(&mut self.carry));
        }
    }

    /// The cells of row `r` as text, one per column: an empty cell as a
    /// space, the second half of a wide character as nothing.
    fn row_cells(&self, r: u16) -> Vec<&str> {
        let screen = self.emulator.screen();
        (0..self.cols)
            .filter_map(|c| screen.cell(r, c))
            .map(|cell| {
                if cell.is_wide_continuation() {
                    ""
                } else if cell.has_contents() {
                    cell.contents()
                } else {
                    " "
                }
            })
            .collect()
    }

    fn is_blank(&self, r: u16) -> bool {
        let screen = self.emulator.screen();
        (0..self.cols).all(|c| screen.cell(r, c).is_none_or(|cell| !cell.has_contents()))
    }

    fn refresh_blank_row(&mut self, r: u16) {
        let screen = self.screen_index();
        if self.is_blank(r)
            && let Some(state) = self.accounted[screen].get_mut(usize::from(r))
        {
            *state = RowState::default();
        }
    }

    fn refresh_blank_rows(&mut self) {
        for r in 0..self.rows {
            self.refresh_blank_row(r);
        }
    }

    /// Moves the accounting along with rows that scrolled.
    fn shift(&mut self, screen: usize, shift: Shift) {
        let accounted = &mut self.accounted[screen];
        let last = usize::from(self.rows) - 1;
        match shift {
            Shift::Up { from, to, by } => {
                let (from, to) = (usize::from(from), usize::from(to).min(last));
                if from > to {
                    return;
                }
                let span = &mut accounted[from..=to];
                let by = usize::from(by).min(span.len());
                span.rotate_left(by);
                let len = span.len();
                span[len - by..].fill(RowState::default());
            }
            Shift::Down { from, to, by } => {
                let (from, to) = (usize::from(from), usize::from(to).min(last));
                if from > to {
                    return;
                }
                let span = &mut accounted[from..=to];
                let by = usize::from(by).min(span.len());
                span.rotate_right(by);
                span[..by].fill(RowState::default());
            }
        }
    }
}

/// Appends `text` to `line` without going past `max` bytes (cutting at a
/// character boundary).
fn push_bounded(line: &mut String, text: &str, max: usize) {
    let room = max.saturating_sub(line.len());
    if text.len() <= room {
        line.push_str(text);
        return;
    }
    let mut cut = room;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    line.push_str(&text[..cut]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(terminal: &mut Terminal, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        terminal.feed(bytes, &mut out);
        out
    }

    #[test]
    fn rows_written_with_cursor_moves_become_one_line_each_when_the_cursor_moves_below_them() {
        let mut terminal = Terminal::with_size(6, 20, 4096);
        // Clear, then rows 3 and 2 out of order, then the cursor goes to
        // the last row.
        let out = lines(&mut terminal, b"\x1b[H\x1b[2J\x1b[3;1Hthird\x1b[2;1Hsecond");
        assert!(out.is_empty(), "nothing is finished yet: {out:?}");
        let out = lines(&mut terminal, b"\x1b[6d");
        assert_eq!(out, ["second", "third"]);
    }

    #[test]
    fn the_row_the_cursor_rests_on_is_not_a_line_until_the_cursor_leaves_it_downwards() {
        let mut terminal = Terminal::with_size(6, 20, 4096);
        let mut out = lines(&mut terminal, b"\x1b[6;1H> /stat");
        // The game updates a row above the prompt and comes back.
        out.extend(lines(&mut terminal, b"\x1b[1;1Hstatus\x1b[6;8H"));
        assert_eq!(out, ["status"], "the prompt is not a line");
        out.extend(lines(&mut terminal, b"us"));
        assert_eq!(out, ["status"]);
    }

    #[test]
    fn a_row_redrawn_in_place_after_it_was_emitted_is_not_emitted_again() {
        let mut terminal = Terminal::with_size(6, 40, 4096);
        let mut out = lines(&mut terminal, b"\x1b[1;1HUptime 1s | Time 06:08\x1b[6;1H");
        // Partial redraws: the counter and the clock, cursor back to the
        // bottom each time; then a whole unchanged redraw.
        out.extend(lines(&mut terminal, b"\x1b[1;8H2\x1b[6;1H"));
        out.extend(lines(&mut terminal, b"\x1b[1;22H9\x1b[6;1H"));
        out.extend(lines(
            &mut terminal,
            b"\x1b[1;1HUptime 2s | Time 06:09\x1b[6;1H",
        ));
        assert_eq!(out, ["Uptime 1s | Time 06:08"]);
    }

    #[test]
    fn a_row_that_is_erased_and_written_again_is_a_new_line() {
        let mut terminal = Terminal::with_size(6, 40, 4096);
        let mut out = lines(&mut terminal, b"\x1b[2;1Hfirst\x1b[6;1H");
        // Clear-line from the first column, then new text.
        out.extend(lines(&mut terminal, b"\x1b[2;1H\x1b[Ksecond\x1b[6;1H"));
        // Clearing only the end of a row keeps it accounted.
        out.extend(lines(&mut terminal, b"\x1b[2;4H\x1b[K\x1b[6;1H"));
        assert_eq!(out, ["first", "second"]);
    }

    #[test]
    fn a_row_written_in_several_pieces_is_one_line() {
        let mut terminal = Terminal::with_size(6, 40, 4096);
        let mut out = lines(&mut terminal, b"\x1b[3;1HHel");
        out.extend(lines(&mut terminal, b"lo \x1b[3;10Hworld"));
        out.extend(lines(&mut terminal, b"\x1b[3;10H\x1b[1mW\x1b[m\r\n"));
        assert_eq!(out, ["Hello    World"]);
    }

    #[test]
    fn lines_printed_with_line_feeds_scroll_and_each_becomes_a_line_once() {
        let mut terminal = Terminal::with_size(4, 20, 4096);
        let mut out = Vec::new();
        for i in 0..10 {
            out.extend(lines(&mut terminal, format!("line {i}\r\n").as_bytes()));
        }
        let expected: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn a_scroll_region_moves_accounted_rows_without_emitting_them_again() {
        // Minetest's layout: a status row, a log region, a prompt row.
        let mut terminal = Terminal::with_size(6, 30, 4096);
        let mut out = lines(
            &mut terminal,
            b"\x1b[?1049h\x1b[H\x1b[2Jstatus\r\x1b[2dlog a\r\x1b[3dlog b\r\x1b[4dlog c\r\x1b[6d]",
        );
        assert_eq!(out, ["status", "log a", "log b", "log c"]);
        // Two rows scroll out of the log region (rows 2-5), and two new
        // rows are written below the one that moved up.
        out.clear();
        out.extend(lines(
            &mut terminal,
            b"\x1b[2;5r\x1b[5;1H\x1b[2S\x1b[1;6r\x1b[3;1Hlog d\r\x1b[4dlog e\r\x1b[6d]",
        ));
        assert_eq!(out, ["log d", "log e"]);
        // The game redraws the whole screen as it is now: nothing new.
        out.clear();
        out.extend(lines(
            &mut terminal,
            b"\x1b[1;1Hstatus\x1b[2;1Hlog c\x1b[3;1Hlog d\x1b[4;1Hlog e\x1b[6;1H]",
        ));
        assert_eq!(out, Vec::<String>::new());
    }

    #[test]
    fn a_line_feed_at_the_bottom_of_a_scroll_region_finishes_the_row_and_keeps_the_prompt() {
        let mut terminal = Terminal::with_size(5, 30, 4096);
        let mut out = lines(&mut terminal, b"\x1b[1;4r\x1b[5;1H> typing");
        for i in 0..6 {
            // Save the cursor, print at the bottom of the region, restore.
            out.extend(lines(
                &mut terminal,
                format!("\x1b7\x1b[4;1Hmessage {i}\n\x1b8").as_bytes(),
            ));
        }
        let expected: Vec<String> = (0..6).map(|i| format!("message {i}")).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn inserted_and_deleted_lines_move_the_accounting_with_the_rows() {
        let mut terminal = Terminal::with_size(6, 30, 4096);
        let mut out = lines(&mut terminal, b"a\r\nb\r\nc\r\n");
        assert_eq!(out, ["a", "b", "c"]);
        // Delete row 1 (`a`): `b` and `c` move up; then insert a blank row
        // at the top and write `z` there.
        out.clear();
        out.extend(lines(
            &mut terminal,
            b"\x1b[1;1H\x1b[M\x1b[L\x1b[1;1Hz\x1b[6;1H",
        ));
        assert_eq!(out, ["z"]);
    }

    #[test]
    fn a_line_wrapped_at_the_right_margin_is_one_line() {
        let mut terminal = Terminal::with_size(4, 10, 4096);
        let out = lines(&mut terminal, b"0123456789abcdefghij klm\r\nnext\r\n");
        assert_eq!(out, ["0123456789abcdefghij klm", "next"]);
    }

    #[test]
    fn leaving_the_alternate_screen_keeps_the_main_screen_accounted() {
        let mut terminal = Terminal::with_size(6, 30, 4096);
        let mut out = lines(&mut terminal, b"before\r\n");
        out.extend(lines(
            &mut terminal,
            b"\x1b[?1049h\x1b[H\x1b[2Jdrawn\x1b[6;1H",
        ));
        out.extend(lines(&mut terminal, b"\x1b[?1049lafter\r\n"));
        assert_eq!(out, ["before", "drawn", "after"]);
    }

    #[test]
    fn a_full_reset_forgets_the_screen_and_its_scroll_region() {
        let mut terminal = Terminal::with_size(4, 20, 4096);
        let mut out = lines(&mut terminal, b"\x1b[?1049h\x1b[2;3rkept\x1b[4;1H");
        out.extend(lines(
            &mut terminal,
            b"\x1bcone\r\ntwo\r\nthree\r\nfour\r\nfive\r\n",
        ));
        assert_eq!(out, ["kept", "one", "two", "three", "four", "five"]);
    }

    #[test]
    fn a_line_is_cut_at_the_byte_limit_on_a_character_boundary() {
        let mut terminal = Terminal::with_size(4, 20, 5);
        let out = lines(&mut terminal, "abcdé\r\n".as_bytes());
        assert_eq!(out, ["abcd"]);
    }
}
