//! A message inside a larger buffer, with room in front (headroom) and behind (tailroom),
//! so that insertions and deletions move only the shorter side of the edit point.

use super::copy::move_within;
use std::fmt;

/// The edit does not fit in the buffer's head- or tailroom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom;

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no room in the buffer for the edit")
    }
}

impl std::error::Error for NoRoom {}

/// The message occupies `buf[start..end]`.
#[derive(Debug)]
pub struct Frame<'a> {
    buf: &'a mut [u8],
    start: usize,
    end: usize,
}

impl<'a> Frame<'a> {
    /// A frame over `buf[start..start + len]`. Panics if that range is out of bounds,
    /// which is a programming error on the caller's side, never a property of input data.
    pub fn new(buf: &'a mut [u8], start: usize, len: usize) -> Self {
        assert!(start + len <= buf.len(), "frame outside its buffer");
        Frame {
            buf,
            start,
            end: start + len,
        }
    }

    /// The message bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Length of the message.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True if the message is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Where the message starts in the underlying buffer.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Shortens the message to `len` bytes (drops trailing octets).
    pub fn truncate(&mut self, len: usize) {
        self.end = self.start + len.min(self.len());
    }

    /// Replaces `remove` bytes at offset `at` with `len` bytes that `fill` writes (it gets
    /// exactly that slice), so an inserted text can be formatted in place rather than
    /// copied. Otherwise as [`Frame::splice`]; on error `fill` is not called.
    pub fn splice_with(
        &mut self,
        at: usize,
        remove: usize,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), NoRoom> {
        self.make_room(at, remove, len)?;
        let at = self.start + at;
        fill(&mut self.buf[at..at + len]);
        Ok(())
    }

    /// Inserts `len` bytes that `fill` writes (it gets exactly that slice) at offset `at`,
    /// moving the `at` bytes in front of it into the headroom when they fit there: for
    /// lines added above the first header, only the start line moves. Otherwise as
    /// [`Frame::splice_with`].
    #[inline]
    pub fn insert_front_with(
        &mut self,
        at: usize,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), NoRoom> {
        if at > self.len() || len > self.start {
            return self.splice_with(at, 0, len, fill);
        }
        let new_start = self.start - len;
        move_within(self.buf, self.start..self.start + at, new_start);
        self.start = new_start;
        let at = new_start + at;
        fill(&mut self.buf[at..at + len]);
        Ok(())
    }

    /// Replaces `remove` bytes at offset `at` (relative to the message start) with
    /// `insert`. Offsets before `at` keep their meaning; those after shift by the
    /// length difference. Moves whichever side of the edit is shorter.
    pub fn splice(&mut self, at: usize, remove: usize, insert: &[u8]) -> Result<(), NoRoom> {
        self.make_room(at, remove, insert.len())?;
        let at = self.start + at;
        self.buf[at..at + insert.len()].copy_from_slice(insert);
        Ok(())
    }

    /// Turns the `remove` bytes at `at` into `insert` bytes of unspecified content, moving
    /// the shorter side.
    fn make_room(&mut self, at: usize, remove: usize, insert: usize) -> Result<(), NoRoom> {
        let len = self.len();
        if at + remove > len {
            return Err(NoRoom);
        }
        let before = at;
        let after = len - at - remove;
        let headroom = self.start;
        let tailroom = self.buf.len() - self.end;
        if insert >= remove {
            let grow = insert - remove;
            let front = grow <= headroom;
            let back = grow <= tailroom;
            if front && (before <= after || !back) {
                let new_start = self.start - grow;
                move_within(self.buf, self.start..self.start + before, new_start);
                self.start = new_start;
            } else if back {
                let tail = self.start + at + remove;
                self.buf.copy_within(tail..self.end, tail + grow);
                self.end += grow;
            } else {
                return Err(NoRoom);
            }
        } else {
            let shrink = remove - insert;
            if before <= after {
                let new_start = self.start + shrink;
                move_within(self.buf, self.start..self.start + before, new_start);
                self.start = new_start;
            } else {
                let tail = self.start + at + remove;
                self.buf.copy_within(tail..self.end, tail - shrink);
                self.end -= shrink;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_with(msg: &[u8], head: usize, tail: usize) -> (Vec<u8>, usize) {
        let mut buf = vec![b'#'; head + msg.len() + tail];
        buf[head..head + msg.len()].copy_from_slice(msg);
        (buf, msg.len())
    }

    #[test]
    fn insert_near_front_uses_headroom() {
        let (mut buf, len) = frame_with(b"AAAA|BBBBBBBBBBBB", 8, 0);
        let mut f = Frame::new(&mut buf, 8, len);
        f.splice(4, 0, b"xyz").unwrap();
        assert_eq!(f.bytes(), b"AAAAxyz|BBBBBBBBBBBB");
        assert_eq!(f.start(), 5);
    }

    #[test]
    fn insert_near_back_uses_tailroom() {
        let (mut buf, len) = frame_with(b"AAAAAAAAAAAA|BBBB", 0, 8);
        let mut f = Frame::new(&mut buf, 0, len);
        f.splice(12, 1, b"--").unwrap();
        assert_eq!(f.bytes(), b"AAAAAAAAAAAA--BBBB");
        assert_eq!(f.start(), 0);
    }

    #[test]
    fn shrink_both_ways() {
        let (mut buf, len) = frame_with(b"AB|CDEFGHIJ", 2, 2);
        let mut f = Frame::new(&mut buf, 2, len);
        f.splice(2, 1, b"").unwrap();
        assert_eq!(f.bytes(), b"ABCDEFGHIJ");
        f.splice(8, 2, b"!").unwrap();
        assert_eq!(f.bytes(), b"ABCDEFGH!");
    }

    #[test]
    fn splice_with_fills_exactly_the_inserted_bytes() {
        let (mut buf, len) = frame_with(b"AAAA|BBBBBBBBBBBB", 8, 8);
        let mut f = Frame::new(&mut buf, 8, len);
        f.splice_with(4, 1, 3, |out| out.copy_from_slice(b"xyz"))
            .unwrap();
        assert_eq!(f.bytes(), b"AAAAxyzBBBBBBBBBBBB");
        f.splice_with(f.len(), 0, 2, |out| out.copy_from_slice(b"!!"))
            .unwrap();
        assert_eq!(f.bytes(), b"AAAAxyzBBBBBBBBBBBB!!");
    }

    #[test]
    fn insert_front_moves_the_front_or_falls_back() {
        // Headroom enough: the front moves, even when it is the longer side.
        let (mut buf, len) = frame_with(b"AAAAAAAA|B", 4, 8);
        let mut f = Frame::new(&mut buf, 4, len);
        f.insert_front_with(8, 3, |out| out.copy_from_slice(b"xyz"))
            .unwrap();
        assert_eq!((f.bytes(), f.start()), (&b"AAAAAAAAxyz|B"[..], 1));
        // Headroom short: the back moves into the tailroom instead.
        f.insert_front_with(0, 2, |out| out.copy_from_slice(b"<<"))
            .unwrap();
        assert_eq!((f.bytes(), f.start()), (&b"<<AAAAAAAAxyz|B"[..], 1));
        // Neither fits, or the offset is past the end: nothing changes, nothing is filled.
        let untouched = |_: &mut [u8]| panic!("filled without room");
        assert_eq!(f.insert_front_with(2, 7, untouched), Err(NoRoom));
        assert_eq!(f.insert_front_with(f.len() + 1, 1, untouched), Err(NoRoom));
        assert_eq!(f.bytes(), b"<<AAAAAAAAxyz|B");
    }

    #[test]
    fn no_room() {
        let (mut buf, len) = frame_with(b"ABCD", 1, 1);
        let mut f = Frame::new(&mut buf, 1, len);
        assert_eq!(f.splice(2, 0, b"xyz"), Err(NoRoom));
        assert_eq!(f.splice(3, 2, b""), Err(NoRoom));
        assert_eq!(f.bytes(), b"ABCD");
        let untouched = |_: &mut [u8]| panic!("filled without room");
        assert_eq!(f.splice_with(2, 0, 3, untouched), Err(NoRoom));
        f.truncate(2);
        assert_eq!(f.bytes(), b"AB");
    }
}
