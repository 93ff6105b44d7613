//! Which final response a forking or failing-over proxy gives the client (RFC 3261 §16.7
//! step 6): the branches' finals are collected as they come; a 2xx or a 6xx goes out at
//! once (the caller relays it), otherwise the best one once every branch has answered.

/// The answer for the client once every branch is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Best {
    /// Relay the final response of branch `branch` (its status `status`).
    Relay {
        /// The branch, as the caller numbered it.
        branch: u8,
        /// Its status.
        status: u16,
    },
    /// No branch gave a final response: the proxy answers with this status itself (408 when
    /// none answered; 500 in place of a lone 503, §16.7 step 6).
    Generate(u16),
}

/// The best final response so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    best: Option<(u8, u16)>,
}

/// The 4xx a proxy prefers to pass on: they ask the client to act (authenticate, change
/// the body, the extension or the address).
fn actionable(status: u16) -> bool {
    matches!(status, 401 | 407 | 415 | 420 | 484)
}

/// Lower is better (§16.7 step 6): 6xx, then the lowest class, preferring actionable 4xx
/// and any status but 503 (which the proxy must not pass on as such).
fn rank(status: u16) -> (u16, u8) {
    let class = status / 100;
    let class_rank = if class == 6 { 0 } else { class };
    let within = if actionable(status) {
        0
    } else if status == 503 {
        2
    } else {
        1
    };
    (class_rank, within)
}

impl Selection {
    /// Branch `branch` gave the final response `status` (300..=699; a 2xx is relayed at
    /// once by the caller and never kept here).
    pub fn offer(&mut self, branch: u8, status: u16) {
        let better = match self.best {
            None => true,
            Some((_, kept)) => rank(status) < rank(kept),
        };
        if better {
            self.best = Some((branch, status));
        }
    }

    /// True when a 6xx came: the other branches are to be cancelled (§16.7 step 5).
    pub fn global_failure(&self) -> bool {
        self.best.is_some_and(|(_, status)| status >= 600)
    }

    /// The answer once every branch is over.
    pub fn best(&self) -> Best {
        match self.best {
            None => Best::Generate(408),
            Some((_, 503)) => Best::Generate(500),
            Some((branch, status)) => Best::Relay { branch, status },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(finals: &[u16]) -> Best {
        let mut s = Selection::default();
        for (i, &status) in finals.iter().enumerate() {
            s.offer(i as u8, status);
        }
        s.best()
    }

    #[test]
    fn the_best_final_response_follows_section_16_7() {
        assert_eq!(select(&[]), Best::Generate(408));
        assert_eq!(select(&[503]), Best::Generate(500));
        assert_eq!(select(&[503, 503]), Best::Generate(500));
        // A 6xx wins over everything, whatever came first.
        assert_eq!(
            select(&[486, 302, 603]),
            Best::Relay {
                branch: 2,
                status: 603
            }
        );
        // The lowest class otherwise.
        assert_eq!(
            select(&[500, 404, 302]),
            Best::Relay {
                branch: 2,
                status: 302
            }
        );
        // Within 4xx, an actionable one; within 5xx, anything but 503.
        assert_eq!(
            select(&[404, 407, 486]),
            Best::Relay {
                branch: 1,
                status: 407
            }
        );
        assert_eq!(
            select(&[503, 500]),
            Best::Relay {
                branch: 1,
                status: 500
            }
        );
        // Equal ranks: the first one stays.
        assert_eq!(
            select(&[486, 404]),
            Best::Relay {
                branch: 0,
                status: 486
            }
        );
        let mut s = Selection::default();
        s.offer(0, 486);
        assert!(!s.global_failure());
        s.offer(1, 600);
        assert!(s.global_failure());
    }
}
