//! `/api/usage` (the caller's own), `/api/admin/usage` (everyone's) and
//! `/api/admin/users/{id}/limits`: what the ledger's daily rollup says, and
//! the limits administrators set on accounts.

use crate::chat::ChatService;
use crate::db::Db;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{AdminUser, AuthUser};
use crate::http::json::ApiJson;
use crate::http::query::ApiQuery;
use crate::http::state::AppState;
use crate::usage::limits::{self, Limits};
use crate::usage::meter::Subject;
use crate::usage::store::{GroupBy, UsageQuery, UsageSum};
use crate::usage::Usage;
use app::wire::{
    BudgetView, ErrorResponse, LimitsResponse, LimitsView, SetLimitsRequest, UsageResponse,
    UsageRow,
};
use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use std::collections::HashMap;

/// The longest range one query sums (a year and a day).
const MAX_DAYS: i64 = 366;
/// The range when none is given: the last 30 days, today included.
const DEFAULT_DAYS: i64 = 30;

/// Behind the caller's session (the caller adds the check).
pub fn protected() -> Router<AppState> {
    Router::new().route("/api/usage", get(own))
}

/// Administrators only (the caller adds the check).
pub fn admin() -> Router<AppState> {
    Router::new()
        .route("/api/admin/usage", get(everyone))
        // One call per method, each on one line: the API tests find routes
        // by scanning for `.route("`.
        .route("/api/admin/users/{user_id}/limits", put(set_limits))
        .route("/api/admin/users/{user_id}/limits", get(get_limits))
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD&groupBy=day|model|key|user`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// First day (UTC, `YYYY-MM-DD`); default: 29 days before `to`.
    from: Option<String>,
    /// Last day, inclusive (UTC, `YYYY-MM-DD`); default: today.
    to: Option<String>,
    /// `day` (default), `model`, `key`, or (`/api/admin/usage` only) `user`.
    group_by: Option<String>,
}

fn usage_of(chat: &ChatService) -> ApiResult<&Usage> {
    chat.usage()
        .ok_or_else(|| ApiError::Unavailable("the usage ledger is not running".into()))
}

fn day(field: &'static str, text: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::invalid_field(
            "invalid_query",
            field,
            format!("{field} must be a date, YYYY-MM-DD"),
        )
    })
}

/// The days and grouping asked for, checked.
fn range(params: &UsageParams, allow_user: bool) -> ApiResult<(NaiveDate, NaiveDate, GroupBy)> {
    let to = match &params.to {
        Some(text) => day("to", text)?,
        None => Utc::now().date_naive(),
    };
    let from = match &params.from {
        Some(text) => day("from", text)?,
        None => limits::add_days(to, 1 - DEFAULT_DAYS),
    };
    if from > to {
        return Err(ApiError::invalid_field(
            "invalid_query",
            "from",
            "from must not be after to",
        ));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::invalid_field(
            "invalid_query",
            "from",
            format!("a query covers at most {MAX_DAYS} days"),
        ));
    }
    let group_by = match params.group_by.as_deref() {
        None => GroupBy::Day,
        Some(text) => GroupBy::parse(text)
            .filter(|g| allow_user || *g != GroupBy::User)
            .ok_or_else(|| {
                let choices = if allow_user {
                    "day, model, key or user"
                } else {
                    "day, model or key"
                };
                ApiError::invalid_field(
                    "invalid_query",
                    "groupBy",
                    format!("groupBy must be {choices}"),
                )
            })?,
    };
    Ok((from, to, group_by))
}

fn as_u64(n: i64) -> u64 {
    n.max(0) as u64
}

fn row(sum: UsageSum, label: Option<String>) -> UsageRow {
    let (prompt, completion) = (as_u64(sum.prompt_tokens), as_u64(sum.completion_tokens));
    UsageRow {
        group: sum.group,
        label,
        requests: as_u64(sum.requests),
        errors: as_u64(sum.errors),
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        budget: None,
    }
}

fn totals(rows: &[UsageRow]) -> UsageRow {
    let mut total = UsageRow {
        group: "total".into(),
        label: None,
        requests: 0,
        errors: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        total_tokens: 0,
        budget: None,
    };
    for r in rows {
        total.requests += r.requests;
        total.errors += r.errors;
        total.prompt_tokens += r.prompt_tokens;
        total.completion_tokens += r.completion_tokens;
        total.total_tokens += r.total_tokens;
    }
    total
}

fn limits_view(limits: &Limits) -> LimitsView {
    LimitsView::from(limits)
}

/// A budget and what is left of it this period, from the rollup.
async fn budget_view(
    usage: &Usage,
    subject: Subject<'_>,
    limits: &Limits,
) -> ApiResult<Option<BudgetView>> {
    let Some(budget) = limits.budget else {
        return Ok(None);
    };
    let since = budget.period.first_day(Utc::now());
    let spent = usage.store().spent_since(&subject, since).await?;
    Ok(Some(BudgetView {
        tokens: budget.tokens,
        period: budget.period.as_str().into(),
        spent,
        remaining: budget.tokens.saturating_sub(spent),
    }))
}

/// What one usage request asked for, checked, and its sums.
struct Summed {
    from: NaiveDate,
    to: NaiveDate,
    group_by: GroupBy,
    sums: Vec<UsageSum>,
}

/// Checks the query and sums the rollup: one user's rows (`user_id`), or
/// everyone's (`None`, where grouping by user is allowed).
async fn summed(usage: &Usage, params: &UsageParams, user_id: Option<&str>) -> ApiResult<Summed> {
    let (from, to, group_by) = range(params, user_id.is_none())?;
    let sums = usage
        .store()
        .summary(&UsageQuery {
            from,
            to,
            user_id,
            group_by,
        })
        .await?;
    Ok(Summed {
        from,
        to,
        group_by,
        sums,
    })
}

impl Summed {
    fn response(
        &self,
        rows: Vec<UsageRow>,
        limits: Option<LimitsView>,
        budget: Option<BudgetView>,
    ) -> UsageResponse {
        UsageResponse {
            success: true,
            from: limits::day_string(self.from),
            to: limits::day_string(self.to),
            group_by: self.group_by.as_str().into(),
            totals: totals(&rows),
            rows,
            limits,
            budget,
        }
    }
}

#[utoipa::path(get, path = "/api/usage", tag = "usage",
    security(("bearer" = []), ("session_cookie" = [])),
    params(UsageParams),
    responses(
        (status = 200, description = "The caller's usage per day, model or key, with their limits and budget left", body = UsageResponse),
        (status = 400, description = "A bad date, range or grouping", body = ErrorResponse),
    ))]
async fn own(
    AuthUser(user): AuthUser,
    State(chat): State<ChatService>,
    State(db): State<Db>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<Json<UsageResponse>> {
    let usage = usage_of(&chat)?;
    let mut summed = summed(usage, &params, Some(&user.user_id)).await?;
    let sums = std::mem::take(&mut summed.sums);
    let mut rows = Vec::with_capacity(sums.len());
    if summed.group_by == GroupBy::Key {
        // Names and budgets of the caller's keys (a revoked key keeps its
        // usage and loses its name).
        let keys: HashMap<String, crate::db::api_keys::KeyRow> =
            crate::db::api_keys::list_for_user(&db, &user.user_id)
                .await?
                .into_iter()
                .map(|k| (k.key_id.clone(), k))
                .collect();
        for sum in sums {
            let key = keys.get(&sum.group);
            let label = match (sum.group.is_empty(), key) {
                (true, _) => Some("signed-in session".to_string()),
                (false, Some(key)) => Some(key.name.clone()),
                (false, None) => Some("revoked key".to_string()),
            };
            let budget = match key {
                Some(key) => budget_view(usage, Subject::Key(&key.key_id), &key.limits()).await?,
                None => None,
            };
            rows.push(UsageRow {
                budget,
                ..row(sum, label)
            });
        }
    } else {
        rows.extend(sums.into_iter().map(|s| row(s, None)));
    }
    let limits = usage.user_limits(&user.user_id).await;
    let budget = budget_view(usage, Subject::User(&user.user_id), &limits).await?;
    Ok(Json(summed.response(
        rows,
        Some(limits_view(&limits)),
        budget,
    )))
}

#[utoipa::path(get, path = "/api/admin/usage", tag = "usage",
    security(("bearer" = []), ("session_cookie" = [])),
    params(UsageParams),
    responses(
        (status = 200, description = "Everyone's usage per day, model, key or user", body = UsageResponse),
        (status = 400, description = "A bad date, range or grouping", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
    ))]
async fn everyone(
    AdminUser(_): AdminUser,
    State(chat): State<ChatService>,
    State(db): State<Db>,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> ApiResult<Json<UsageResponse>> {
    let usage = usage_of(&chat)?;
    let mut summed = summed(usage, &params, None).await?;
    let names: HashMap<String, String> = if summed.group_by == GroupBy::User {
        crate::db::users::list(&db)
            .await?
            .into_iter()
            .map(|u| (u.user_id, u.username))
            .collect()
    } else {
        HashMap::new()
    };
    let rows: Vec<UsageRow> = std::mem::take(&mut summed.sums)
        .into_iter()
        .map(|sum| {
            let label = names.get(&sum.group).cloned();
            row(sum, label)
        })
        .collect();
    Ok(Json(summed.response(rows, None, None)))
}

#[utoipa::path(put, path = "/api/admin/users/{user_id}/limits", tag = "usage",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("user_id" = String, Path, description = "The account's id")),
    request_body = SetLimitsRequest,
    responses(
        (status = 200, description = "The account's limits, replaced; they apply from the next request", body = LimitsResponse),
        (status = 400, description = "A limit is out of range, or a budget lacks its period", body = ErrorResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such account", body = ErrorResponse),
    ))]
async fn set_limits(
    AdminUser(admin): AdminUser,
    State(chat): State<ChatService>,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<SetLimitsRequest>,
) -> ApiResult<Json<LimitsResponse>> {
    let usage = usage_of(&chat)?;
    let limits = limits::validate(
        req.rpm,
        req.tpm,
        req.budget_tokens,
        req.budget_period.as_deref(),
    )
    .map_err(|e| ApiError::invalid_field("invalid_field", e.field(), e.to_string()))?;
    if !usage.set_user_limits(&user_id, &limits).await? {
        return Err(ApiError::NotFound("No account has this id.".into()));
    }
    tracing::info!(admin = %admin.user_id, %user_id, "account limits set");
    Ok(Json(LimitsResponse {
        success: true,
        user_id,
        limits: limits_view(&limits),
    }))
}

#[utoipa::path(get, path = "/api/admin/users/{user_id}/limits", tag = "usage",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("user_id" = String, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account's limits", body = LimitsResponse),
        (status = 403, description = "Not an administrator", body = ErrorResponse),
        (status = 404, description = "No such account", body = ErrorResponse),
    ))]
async fn get_limits(
    AdminUser(_): AdminUser,
    State(db): State<Db>,
    Path(user_id): Path<String>,
) -> ApiResult<Json<LimitsResponse>> {
    if crate::db::users::find_by_id(&db, &user_id).await?.is_none() {
        return Err(ApiError::NotFound("No account has this id.".into()));
    }
    let limits = crate::db::limits::for_user(&db, &user_id).await?;
    Ok(Json(LimitsResponse {
        success: true,
        user_id,
        limits: limits_view(&limits),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: Option<&str>, to: Option<&str>, group_by: Option<&str>) -> UsageParams {
        UsageParams {
            from: from.map(str::to_string),
            to: to.map(str::to_string),
            group_by: group_by.map(str::to_string),
        }
    }

    #[test]
    fn ranges_default_to_thirty_days_and_refuse_nonsense() {
        let (from, to, group) = range(&params(None, Some("2026-12-31"), None), false).unwrap();
        assert_eq!(
            (limits::day_string(from), limits::day_string(to)),
            ("2026-12-02".into(), "2026-12-31".into())
        );
        assert_eq!(group, GroupBy::Day);
        assert!(range(&params(Some("2026-12-05"), Some("2026-12-04"), None), false).is_err());
        assert!(range(&params(Some("2025-01-01"), Some("2026-12-04"), None), false).is_err());
        assert!(range(&params(Some("yesterday"), None, None), false).is_err());
        assert!(range(&params(None, None, Some("user")), false).is_err());
        assert!(range(&params(None, None, Some("user")), true).is_ok());
    }
}
