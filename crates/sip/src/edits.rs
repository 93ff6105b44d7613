//! A short list of non-overlapping byte edits, applied to a [`Frame`] from the last offset
//! to the first, so that every offset stays valid while the list is applied.

use super::frame::{Frame, NoRoom};
use arrayvec::ArrayVec;
use std::fmt;

/// Why a rewrite could not be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// The buffer has no head- or tailroom left for the edit.
    NoRoom,
    /// More edits than the fixed list holds.
    TooManyEdits,
    /// Two edits touch the same bytes.
    Overlap,
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RewriteError::NoRoom => "no room in the buffer for the rewrite",
            RewriteError::TooManyEdits => "too many edits",
            RewriteError::Overlap => "overlapping edits",
        })
    }
}

impl std::error::Error for RewriteError {}

impl From<NoRoom> for RewriteError {
    fn from(_: NoRoom) -> Self {
        RewriteError::NoRoom
    }
}

/// Most edits one message needs: Via insert, received, rport, Max-Forwards, Route, spare.
pub const MAX_EDITS: usize = 8;

/// One edit: replace `remove` bytes at `at` with `insert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edit<'e> {
    /// Offset from the start of the message.
    pub at: usize,
    /// Bytes removed there.
    pub remove: usize,
    /// Bytes inserted there.
    pub insert: &'e [u8],
}

/// Edits to apply together. Insertions at the same offset come out in the order pushed.
#[derive(Clone, Debug, Default)]
pub struct Edits<'e> {
    list: ArrayVec<(Edit<'e>, u8), MAX_EDITS>,
}

impl<'e> Edits<'e> {
    /// No edits.
    pub fn new() -> Self {
        Edits::default()
    }

    /// Adds an edit.
    pub fn push(&mut self, edit: Edit<'e>) -> Result<(), RewriteError> {
        let seq = self.list.len() as u8;
        self.list
            .try_push((edit, seq))
            .map_err(|_| RewriteError::TooManyEdits)
    }

    /// Applies every edit to `frame`. On error the frame may be partly edited.
    ///
    /// Inlined so that the list is not copied into the call (it is a few hundred bytes).
    #[inline]
    pub fn apply(mut self, frame: &mut Frame<'_>) -> Result<(), RewriteError> {
        // Last offset first; at equal offsets, the later-pushed edit first, so that the
        // earlier one ends up in front of it.
        // An insertion sort: a handful of entries, for which the standard sort's general
        // machinery costs more than the sorting.
        let list = &mut self.list;
        for i in 1..list.len() {
            let mut j = i;
            while j > 0 && (list[j].0.at, list[j].1) > (list[j - 1].0.at, list[j - 1].1) {
                list.swap(j, j - 1);
                j -= 1;
            }
        }
        for pair in self.list.windows(2) {
            let (later, earlier) = (pair[0].0, pair[1].0);
            if earlier.at + earlier.remove > later.at {
                return Err(RewriteError::Overlap);
            }
        }
        for (edit, _) in &self.list {
            frame.splice(edit.at, edit.remove, edit.insert)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_in_any_push_order() {
        let mut buf = [0u8; 64];
        let msg = b"0123456789";
        buf[16..26].copy_from_slice(msg);
        let mut frame = Frame::new(&mut buf, 16, 10);
        let mut e = Edits::new();
        e.push(Edit {
            at: 8,
            remove: 1,
            insert: b"EIGHT",
        })
        .unwrap();
        e.push(Edit {
            at: 0,
            remove: 0,
            insert: b"a",
        })
        .unwrap();
        e.push(Edit {
            at: 0,
            remove: 0,
            insert: b"b",
        })
        .unwrap();
        e.push(Edit {
            at: 3,
            remove: 2,
            insert: b"",
        })
        .unwrap();
        e.apply(&mut frame).unwrap();
        assert_eq!(frame.bytes(), b"ab012567EIGHT9");
    }

    #[test]
    fn rejects_overlap() {
        let mut buf = [0u8; 32];
        let mut frame = Frame::new(&mut buf, 8, 10);
        let mut e = Edits::new();
        e.push(Edit {
            at: 2,
            remove: 3,
            insert: b"",
        })
        .unwrap();
        e.push(Edit {
            at: 4,
            remove: 0,
            insert: b"x",
        })
        .unwrap();
        assert_eq!(e.apply(&mut frame), Err(RewriteError::Overlap));
    }

    #[test]
    fn bounded() {
        let mut e = Edits::new();
        for _ in 0..MAX_EDITS {
            e.push(Edit {
                at: 0,
                remove: 0,
                insert: b"",
            })
            .unwrap();
        }
        assert_eq!(
            e.push(Edit {
                at: 0,
                remove: 0,
                insert: b""
            }),
            Err(RewriteError::TooManyEdits)
        );
    }
}
