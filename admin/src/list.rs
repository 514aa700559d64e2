//! The query parameters every RabbitMQ list endpoint takes: `columns=a,b.c`,
//! `sort=`/`sort_reverse=`, `page`/`page_size` (then the answer is a page object,
//! as RabbitMQ's) and, with a page only (as RabbitMQ), `name=` (a substring; a
//! regex with `use_regex=true` is treated as a substring too).

use crate::error::ApiError;
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value as Json_, json};

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub columns: Option<String>,
    pub sort: Option<String>,
    pub sort_reverse: Option<bool>,
    pub name: Option<String>,
    pub page: Option<usize>,
    pub page_size: Option<usize>,
}

/// RabbitMQ refuses pages larger than this.
const MAX_PAGE_SIZE: usize = 500;

fn path<'a>(v: &'a Json_, dotted: &str) -> Option<&'a Json_> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

/// Only the named columns, nested ones (`message_stats.publish`) kept nested.
fn select(v: &Json_, columns: &[&str]) -> Json_ {
    let mut out = Json_::Object(Map::new());
    for c in columns {
        let Some(x) = path(v, c) else { continue };
        let mut cur = &mut out;
        let mut ok = true;
        for p in c.split('.') {
            // Indexing null makes an object; anything else (`a,a.b`) would panic.
            if !(cur.is_object() || cur.is_null()) {
                ok = false;
                break;
            }
            cur = &mut cur[p];
        }
        if ok {
            *cur = x.clone();
        }
    }
    out
}

fn compare(a: Option<&Json_>, b: Option<&Json_>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(Json_::Number(x)), Some(Json_::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

/// As [`respond`], for objects whose JSON is the costly part (10,000 queues): a
/// page without `sort` renders only the page's items.
pub fn respond_with<T>(
    mut items: Vec<T>,
    q: &ListQuery,
    name_of: impl Fn(&T) -> &str,
    to_json: impl Fn(&T) -> Json_,
) -> Result<Json<Json_>, ApiError> {
    let sorted = q.sort.as_deref().is_some_and(|k| !k.is_empty());
    let (Some(page), false) = (q.page, sorted) else {
        return respond(items.iter().map(&to_json).collect(), q);
    };
    let size = q.page_size.unwrap_or(100);
    check_page(page, size)?;
    let total = items.len();
    if let Some(name) = q.name.as_deref().filter(|n| !n.is_empty()) {
        items.retain(|i| name_of(i).contains(name));
    }
    if q.sort_reverse == Some(true) {
        items.reverse();
    }
    let filtered = items.len();
    let page_count = filtered.div_ceil(size).max(1);
    if page > page_count {
        return Err(beyond(page, page_count));
    }
    let slice: Vec<Json_> = items
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(&to_json)
        .collect();
    Ok(Json(page_object(
        slice, q, page, page_count, size, total, filtered,
    )))
}

fn check_page(page: usize, size: usize) -> Result<(), ApiError> {
    if page == 0 || size == 0 || size > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(format!(
            "page and page_size must be positive, page_size at most {MAX_PAGE_SIZE}"
        )));
    }
    Ok(())
}

fn beyond(page: usize, page_count: usize) -> ApiError {
    ApiError::bad_request(format!("page {page} beyond the last ({page_count})"))
}

/// RabbitMQ's page object, the items cut to `columns=`.
fn page_object(
    slice: Vec<Json_>,
    q: &ListQuery,
    page: usize,
    page_count: usize,
    size: usize,
    total: usize,
    filtered: usize,
) -> Json_ {
    let items = match columns(q) {
        Some(c) => slice.iter().map(|i| select(i, &c)).collect(),
        None => slice,
    };
    json!({
        "filtered_count": filtered,
        "item_count": items.len(),
        "page": page,
        "page_count": page_count,
        "page_size": size,
        "total_count": total,
        "items": items,
    })
}

fn columns(q: &ListQuery) -> Option<Vec<&str>> {
    q.columns
        .as_deref()
        .map(|c| c.split(',').filter(|s| !s.is_empty()).collect())
}

pub fn respond(mut items: Vec<Json_>, q: &ListQuery) -> Result<Json<Json_>, ApiError> {
    let total = items.len();
    // RabbitMQ filters by name only in paged answers; so does this.
    if let Some(name) = q
        .name
        .as_deref()
        .filter(|n| !n.is_empty() && q.page.is_some())
    {
        items.retain(|i| i["name"].as_str().is_some_and(|n| n.contains(name)));
    }
    if let Some(key) = q.sort.as_deref().filter(|k| !k.is_empty()) {
        items.sort_by(|a, b| compare(path(a, key), path(b, key)));
    }
    if q.sort_reverse == Some(true) {
        items.reverse();
    }
    let Some(page) = q.page else {
        let items = match columns(q) {
            Some(c) => items.iter().map(|i| select(i, &c)).collect(),
            None => items,
        };
        return Ok(Json(Json_::Array(items)));
    };
    let size = q.page_size.unwrap_or(100);
    check_page(page, size)?;
    let filtered = items.len();
    let page_count = filtered.div_ceil(size).max(1);
    if page > page_count {
        return Err(beyond(page, page_count));
    }
    let slice: Vec<Json_> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    Ok(Json(page_object(
        slice, q, page, page_count, size, total, filtered,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Json_> {
        (0..5)
            .map(|i| json!({"name": format!("q{i}"), "messages": 5 - i, "stats": {"a": i}}))
            .collect()
    }

    #[test]
    fn columns_sort_and_pages() {
        let q = ListQuery {
            columns: Some("name,stats.a".into()),
            sort: Some("messages".into()),
            ..Default::default()
        };
        let Json(out) = respond(items(), &q).unwrap_or(Json(json!(null)));
        assert_eq!(out[0], json!({"name": "q4", "stats": {"a": 4}}));
        let q = ListQuery {
            page: Some(2),
            page_size: Some(2),
            ..Default::default()
        };
        let Json(out) = respond(items(), &q).unwrap_or(Json(json!(null)));
        assert_eq!(out["page_count"], 3);
        assert_eq!(out["items"][0]["name"], "q2");
        let q = ListQuery {
            page: Some(4),
            page_size: Some(2),
            ..Default::default()
        };
        assert!(respond(items(), &q).is_err());
    }

    #[test]
    fn a_lazy_page_is_the_same_page() {
        for q in [
            ListQuery {
                page: Some(2),
                page_size: Some(2),
                ..Default::default()
            },
            ListQuery {
                page: Some(1),
                page_size: Some(10),
                name: Some("q3".into()),
                ..Default::default()
            },
            ListQuery {
                page: Some(1),
                columns: Some("name".into()),
                sort_reverse: Some(true),
                ..Default::default()
            },
            ListQuery {
                columns: Some("name".into()),
                ..Default::default()
            },
        ] {
            let names: Vec<String> = (0..5).map(|i| format!("q{i}")).collect();
            let lazy = respond_with(
                names,
                &q,
                |n| n.as_str(),
                |n| {
                    items()
                        .into_iter()
                        .find(|i| i["name"] == n.as_str())
                        .unwrap_or_default()
                },
            );
            let eager = respond(items(), &q);
            assert_eq!(lazy.map(|j| j.0).ok(), eager.map(|j| j.0).ok(), "{q:?}");
        }
    }
}
