//! Tenant status state machine and name rules: pure Rust, no Postgres.

use crate::core::error::{Code, MtError, MtResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Provisioning,
    Trial,
    Active,
    Suspended,
    Deleted,
    Purged,
}

pub const ALL_STATUSES: [Status; 6] = [
    Status::Provisioning,
    Status::Trial,
    Status::Active,
    Status::Suspended,
    Status::Deleted,
    Status::Purged,
];

impl Status {
    pub fn parse(s: &str) -> MtResult<Status> {
        Ok(match s {
            "provisioning" => Status::Provisioning,
            "trial" => Status::Trial,
            "active" => Status::Active,
            "suspended" => Status::Suspended,
            "deleted" => Status::Deleted,
            "purged" => Status::Purged,
            other => {
                return Err(
                    MtError::invalid(format!("unknown tenant status \"{other}\"")).hint(
                        "Use one of provisioning, trial, active, suspended, deleted, purged.",
                    ),
                )
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Provisioning => "provisioning",
            Status::Trial => "trial",
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Deleted => "deleted",
            Status::Purged => "purged",
        }
    }

    /// provisioning -> trial -> active <-> suspended -> deleted -> purged;
    /// trial may also be suspended or deleted, a deleted tenant restored to suspended;
    /// active -> active is a renewal (a new billing period).
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Provisioning, Trial | Active | Deleted)
                | (Trial, Active | Suspended | Deleted)
                | (Active, Active | Suspended | Deleted)
                | (Suspended, Active | Deleted)
                | (Deleted, Suspended | Purged)
        )
    }

    pub fn transition(self, next: Status) -> MtResult<Status> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(MtError::new(
                Code::InvalidTransition,
                format!("a tenant cannot go from {} to {}", self.as_str(), next.as_str()),
            )
            .hint("Allowed: provisioning -> trial|active, trial -> active|suspended|deleted, active <-> suspended, active -> active (renewal), suspended|active -> deleted, deleted -> suspended|purged."))
        }
    }
}

/// Why a tenant's status changed (recorded with the audit event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `tenant.set_status` (or `purge`)
    Requested,
    /// `run_maintenance`: the trial ended
    TrialExpired,
    /// `run_maintenance`: suspended for longer than `multitenant.suspension_grace`
    GraceExpired,
    /// `run_maintenance`: deleted for longer than `multitenant.deletion_retention`
    RetentionExpired,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Requested => "requested",
            Reason::TrialExpired => "trial_expired",
            Reason::GraceExpired => "grace_expired",
            Reason::RetentionExpired => "retention_expired",
        }
    }
}

/// What a context for a tenant in this status may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
    None,
}

pub fn access_for(status: Status, suspended_read: bool) -> Access {
    match status {
        Status::Trial | Status::Active => Access::ReadWrite,
        Status::Suspended if suspended_read => Access::ReadOnly,
        _ => Access::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in ALL_STATUSES {
            assert_eq!(Status::parse(s.as_str()).unwrap(), s);
        }
        assert_eq!(
            Status::parse("Active").unwrap_err().code,
            Code::InvalidArgument
        );
    }

    #[test]
    fn state_machine() {
        use Status::*;
        assert!(Provisioning.can_become(Trial));
        assert!(Trial.can_become(Active));
        assert!(Active.can_become(Suspended));
        assert!(Suspended.can_become(Active));
        assert!(Deleted.can_become(Purged));
        assert!(!Active.can_become(Purged));
        assert!(!Purged.can_become(Active));
        assert!(Active.can_become(Active), "renewal");
        assert!(!Suspended.can_become(Suspended));
        assert!(!Active.can_become(Trial));
        assert_eq!(
            Purged.transition(Active).unwrap_err().code,
            Code::InvalidTransition
        );
        // purged is terminal
        for s in ALL_STATUSES {
            assert!(!Purged.can_become(s));
        }
    }

    #[test]
    fn access_rules() {
        assert_eq!(access_for(Status::Active, false), Access::ReadWrite);
        assert_eq!(access_for(Status::Trial, false), Access::ReadWrite);
        assert_eq!(access_for(Status::Suspended, false), Access::None);
        assert_eq!(access_for(Status::Suspended, true), Access::ReadOnly);
        assert_eq!(access_for(Status::Deleted, true), Access::None);
        assert_eq!(access_for(Status::Provisioning, true), Access::None);
    }
}
