//! The redirect server (`sipshard redirect`, RFC 3261 §8.3): instead of forwarding a new
//! call, the balancer answers it with `302 Moved Temporarily` and a Contact naming the
//! backend the same Maglev choice picks; the client then calls that backend itself. It keeps
//! no state and is in no dialog.
//!
//! | request | answer |
//! | --- | --- |
//! | INVITE without a To tag | 302, `Contact: <sip:USER@BACKEND>` (503 when no backend takes calls) |
//! | ACK | absorbed (counted) |
//! | OPTIONS, CANCEL | 200 |
//! | any other with a To tag | 481 |
//! | any other | 405 with `Allow` |

use super::route_set::dialog_role;
use super::stateless::{Answer, Forwarder, ReplyTo};
use super::verdict::{BackendTally, DialogRole, DropReason, Pinning, ReplyKind, Verdict};
use crate::balance::call_id_hash;
use crate::sip::{ContactLine, Extras, Message, SipUri, Status};

/// What a shard's forwarder is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// A stateless proxy (`sipshard balance`).
    #[default]
    Proxy,
    /// A redirect server (`sipshard redirect`).
    Redirect,
}

/// The methods a redirect server answers, for `Allow`.
const ALLOW_LINE: &[u8] = b"Allow: INVITE, ACK, CANCEL, OPTIONS\r\n";

impl Forwarder {
    /// A redirect server's answer to a request from a client.
    pub(super) fn redirect(&self, msg: &Message<'_, '_>, to: &mut ReplyTo<'_>) -> Verdict {
        let allow = Extras {
            headers: ALLOW_LINE,
            ..Extras::default()
        };
        match (msg.method(), dialog_role(msg)) {
            (Some(b"ACK"), _) => Verdict::Drop(DropReason::AbsorbedAck),
            (Some(b"INVITE"), DialogRole::Creates) => self.redirect_call(msg, to),
            (Some(b"OPTIONS" | b"CANCEL"), _) => {
                let status = Status {
                    code: 200,
                    reason: "OK",
                    retry_after: None,
                };
                self.answer(msg, Answer::new(status, ReplyKind::Ok).with(allow), to)
            }
            (_, DialogRole::Within) => {
                let status = Status {
                    code: 481,
                    reason: "Call/Transaction Does Not Exist",
                    retry_after: None,
                };
                self.answer(msg, Answer::new(status, ReplyKind::NoDialog), to)
            }
            _ => {
                let status = Status {
                    code: 405,
                    reason: "Method Not Allowed",
                    retry_after: None,
                };
                let answer = Answer::new(status, ReplyKind::MethodNotAllowed).with(allow);
                self.answer(msg, answer, to)
            }
        }
    }

    /// The 302 to a new call: the backend by Call-ID, as `balance` would pick it.
    fn redirect_call(&self, msg: &Message<'_, '_>, to: &mut ReplyTo<'_>) -> Verdict {
        let snapshot = self.snapshot.borrow();
        let Some(index) = snapshot.pick_index(call_id_hash(msg.call_id)) else {
            let status = Status::service_unavailable(self.retry_after);
            return self.answer(msg, Answer::new(status, ReplyKind::ServiceUnavailable), to);
        };
        let backend = snapshot.backends()[index].addr;
        let user = msg
            .request_uri()
            .and_then(|uri| SipUri::parse(uri).ok())
            .and_then(|uri| uri.user);
        let contact = ContactLine::new(user, backend);
        let status = Status {
            code: 302,
            reason: "Moved Temporarily",
            retry_after: None,
        };
        let tally = BackendTally {
            index: index as u16,
            status: 0,
            pinning: Pinning::Hashed,
            role: DialogRole::Creates,
        };
        let answer = Answer::new(status, ReplyKind::Redirect)
            .with(Extras {
                headers: contact.as_bytes(),
                ..Extras::default()
            })
            .for_backend(tally);
        self.answer(msg, answer, to)
    }
}
