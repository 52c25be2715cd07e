//! What a user or a key may spend: requests and tokens per minute, and a token
//! budget over a period. The rule is one sentence: a request is allowed when
//! every limit that applies to it (its key's and its user's) has room.

use chrono::{DateTime, Datelike, Duration as Days, NaiveDate, TimeZone, Utc};

/// The period a token budget covers. `day` and `month` are UTC calendar
/// periods: a budget starts afresh at midnight UTC, or on the 1st.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Month,
    Total,
}

impl Period {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Self::Day),
            "month" => Some(Self::Month),
            "total" => Some(Self::Total),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
            Self::Total => "total",
        }
    }

    /// The first day (UTC) of the period holding `now`; `None` for `total`.
    pub fn first_day(self, now: DateTime<Utc>) -> Option<NaiveDate> {
        let today = now.date_naive();
        match self {
            Self::Day => Some(today),
            Self::Month => today.with_day(1),
            Self::Total => None,
        }
    }

    /// Seconds until the period holding `now` ends (and a spent budget has
    /// room again); `None` for `total`, which never ends.
    pub fn seconds_left(self, now: DateTime<Utc>) -> Option<u64> {
        let today = now.date_naive();
        let next = match self {
            Self::Day => today.succ_opt()?,
            Self::Month => {
                let first = today.with_day(1)?;
                let (year, month) = match first.month() {
                    12 => (first.year() + 1, 1),
                    m => (first.year(), m + 1),
                };
                NaiveDate::from_ymd_opt(year, month, 1)?
            }
            Self::Total => return None,
        };
        let end = Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0)?);
        Some((end - now).num_seconds().max(1) as u64)
    }
}

/// A token budget: at most `tokens` over each `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub tokens: u64,
    pub period: Period,
}

/// The limits of one user or one key; `None` fields are no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Prompt + completion tokens per minute.
    pub tpm: Option<u32>,
    pub budget: Option<Budget>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.budget.is_none()
    }

    /// From stored columns (a bad period, which the schema rules out, reads
    /// as no budget rather than failing every request).
    pub fn from_columns(
        rpm: Option<i64>,
        tpm: Option<i64>,
        budget_tokens: Option<i64>,
        budget_period: Option<&str>,
    ) -> Self {
        let positive = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0);
        Self {
            rpm: positive(rpm),
            tpm: positive(tpm),
            budget: match (budget_tokens, budget_period.and_then(Period::parse)) {
                (Some(tokens), Some(period)) => Some(Budget {
                    tokens: tokens.max(0) as u64,
                    period,
                }),
                _ => None,
            },
        }
    }
}

impl From<&Limits> for app::wire::LimitsView {
    fn from(limits: &Limits) -> Self {
        Self {
            rpm: limits.rpm.map(u64::from),
            tpm: limits.tpm.map(u64::from),
            budget_tokens: limits.budget.map(|b| b.tokens),
            budget_period: limits.budget.map(|b| b.period.as_str().to_string()),
        }
    }
}

/// Why limits someone asked for cannot be set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("{0} must be a whole number from 1 to {max}", max = MAX_PER_MINUTE)]
    PerMinute(&'static str),
    #[error("budgetTokens must be a whole number from 0 to {MAX_BUDGET_TOKENS}")]
    BudgetTokens,
    #[error("budgetPeriod must be day, month or total")]
    BudgetPeriod,
    #[error("budgetTokens and budgetPeriod go together: give both, or neither")]
    BudgetHalf,
    #[error("a key's {what} ({key}) must not exceed its owner's ({owner})")]
    AboveOwner {
        what: &'static str,
        key: String,
        owner: String,
    },
}

impl LimitError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::PerMinute(field) => field,
            Self::BudgetTokens | Self::BudgetHalf => "budgetTokens",
            Self::BudgetPeriod => "budgetPeriod",
            Self::AboveOwner { what, .. } => what,
        }
    }
}

/// The most requests or tokens per minute that can be set: far above any real
/// use, low enough that counts never overflow.
pub const MAX_PER_MINUTE: u64 = 1_000_000_000;
/// The largest budget that can be set (a trillion tokens).
pub const MAX_BUDGET_TOKENS: u64 = 1_000_000_000_000;

/// Checks limits as a client sends them (numbers it may have made up).
pub fn validate(
    rpm: Option<u64>,
    tpm: Option<u64>,
    budget_tokens: Option<u64>,
    budget_period: Option<&str>,
) -> Result<Limits, LimitError> {
    let per_minute = |value: Option<u64>, field| match value {
        None => Ok(None),
        Some(v) if (1..=MAX_PER_MINUTE).contains(&v) => Ok(Some(v as u32)),
        Some(_) => Err(LimitError::PerMinute(field)),
    };
    let budget = match (budget_tokens, budget_period) {
        (None, None) => None,
        (Some(tokens), Some(period)) => {
            if tokens > MAX_BUDGET_TOKENS {
                return Err(LimitError::BudgetTokens);
            }
            let period = Period::parse(period).ok_or(LimitError::BudgetPeriod)?;
            Some(Budget { tokens, period })
        }
        _ => return Err(LimitError::BudgetHalf),
    };
    Ok(Limits {
        rpm: per_minute(rpm, "rpm")?,
        tpm: per_minute(tpm, "tpm")?,
        budget,
    })
}

/// A key's limits must each be lower than its owner's, where the owner has
/// one: a key narrows what its owner may do, never widens it. (A budget over a
/// different period is compared by tokens alone, which is the strict reading.)
pub fn within_owner(key: &Limits, owner: &Limits) -> Result<(), LimitError> {
    let above = |what: &'static str, key: Option<u64>, owner: Option<u64>| match (key, owner) {
        (Some(k), Some(o)) if k > o => Err(LimitError::AboveOwner {
            what,
            key: k.to_string(),
            owner: o.to_string(),
        }),
        _ => Ok(()),
    };
    above("rpm", key.rpm.map(u64::from), owner.rpm.map(u64::from))?;
    above("tpm", key.tpm.map(u64::from), owner.tpm.map(u64::from))?;
    above(
        "budgetTokens",
        key.budget.map(|b| b.tokens),
        owner.budget.map(|b| b.tokens),
    )
}

/// `YYYY-MM-DD` of the UTC day `days` before `now`'s.
pub fn day_string(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// The UTC day holding `at`.
pub fn day_of(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

/// `day` moved by `n` days.
pub fn add_days(day: NaiveDate, n: i64) -> NaiveDate {
    day + Days::days(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn periods_start_and_end_on_utc_calendar_boundaries() {
        let now = at("2026-12-31T23:59:30Z");
        assert_eq!(Period::Day.seconds_left(now), Some(30));
        assert_eq!(Period::Month.seconds_left(now), Some(30));
        assert_eq!(Period::Total.seconds_left(now), None);
        assert_eq!(
            Period::Month.first_day(now).map(day_string).as_deref(),
            Some("2026-12-01")
        );
        let mid = at("2026-02-10T12:00:00Z");
        assert_eq!(
            Period::Month.seconds_left(mid),
            Some(18 * 86_400 + 12 * 3600)
        );
        assert_eq!(Period::Total.first_day(mid), None);
    }

    #[test]
    fn limits_are_validated_field_by_field() {
        assert_eq!(validate(None, None, None, None), Ok(Limits::default()));
        assert_eq!(
            validate(Some(0), None, None, None),
            Err(LimitError::PerMinute("rpm"))
        );
        assert_eq!(
            validate(None, Some(MAX_PER_MINUTE + 1), None, None),
            Err(LimitError::PerMinute("tpm"))
        );
        assert_eq!(
            validate(None, None, Some(5), None),
            Err(LimitError::BudgetHalf)
        );
        assert_eq!(
            validate(None, None, Some(5), Some("week")),
            Err(LimitError::BudgetPeriod)
        );
        let set = validate(Some(60), Some(1000), Some(0), Some("day")).unwrap();
        assert_eq!(
            set.budget,
            Some(Budget {
                tokens: 0,
                period: Period::Day
            })
        );
    }

    #[test]
    fn a_key_can_only_narrow_its_owner() {
        let owner = validate(Some(10), None, Some(1000), Some("month")).unwrap();
        let fine = validate(Some(9), Some(5000), Some(999), Some("day")).unwrap();
        assert_eq!(within_owner(&fine, &owner), Ok(()));
        let too_fast = validate(Some(11), None, None, None).unwrap();
        assert!(matches!(
            within_owner(&too_fast, &owner),
            Err(LimitError::AboveOwner { what: "rpm", .. })
        ));
        let too_rich = validate(None, None, Some(1001), Some("day")).unwrap();
        assert!(within_owner(&too_rich, &owner).is_err());
        assert_eq!(within_owner(&too_rich, &Limits::default()), Ok(()));
    }
}
