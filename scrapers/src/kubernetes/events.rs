//! Kubernetes Events as changes (SPEC §5 "Kubernetes Events"): reason →
//! type, message → summary, uid → external change id, the event's own
//! count, and a severity from the config's map or the built-in table.

use chrono::{DateTime, Utc};
use serde_json::Value;
use stratum_domain::store::ExternalChange;
use stratum_domain::{ItemRef, Severity};
use uuid::Uuid;

use super::spec::EventOptions;

/// The built-in severity of an event reason (the first matching row of
/// SPEC §5's table).
pub fn builtin_severity(reason: &str, event_type: Option<&str>) -> Severity {
    let glob = |p: &str| glob::Pattern::new(p).is_ok_and(|p| p.matches(reason));
    if ["OOMKilling", "SystemOOM", "NodeNotReady"].contains(&reason) {
        Severity::Critical
    } else if ["BackOff", "Evicted", "FailedScheduling", "FailedMount"].contains(&reason) {
        Severity::High
    } else if reason == "Unhealthy" || glob("Failed*") || glob("*Error") {
        Severity::Medium
    } else if ["Killing", "Preempting", "ScalingReplicaSet"].contains(&reason)
        || glob("Delete*")
        || glob("Update*")
        || event_type == Some("Warning")
    {
        Severity::Low
    } else {
        Severity::Info
    }
}

fn time(event: &Value, pointers: &[&str]) -> Option<DateTime<Utc>> {
    pointers.iter().find_map(|p| {
        event
            .pointer(p)
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    })
}

fn text<'a>(event: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    pointers.iter().find_map(|p| {
        event
            .pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    })
}

/// Why an event gives no change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Its reason is excluded.
    Excluded,
    /// It lacks a uid, a reason or a target uid.
    Malformed(String),
}

/// Turns a core `v1` Event (or an `events.k8s.io/v1` one) into a change of
/// the object it involves.
pub fn to_change(event: &Value, options: &EventOptions) -> Result<ExternalChange, Skipped> {
    let name = text(event, &["/metadata/name"]).unwrap_or("?");
    let reason = text(event, &["/reason"])
        .ok_or_else(|| Skipped::Malformed(format!("event {name}: no reason")))?;
    if options.exclude_reasons.iter().any(|p| p.matches(reason)) {
        return Err(Skipped::Excluded);
    }
    let uid = text(event, &["/metadata/uid"])
        .ok_or_else(|| Skipped::Malformed(format!("event {name}: no uid")))?;
    let target = text(event, &["/involvedObject/uid", "/regarding/uid"])
        .and_then(|u| Uuid::parse_str(u).ok())
        .ok_or_else(|| Skipped::Malformed(format!("event {name}: no involved object uid")))?;
    let event_type = text(event, &["/type"]);
    let severity = options
        .severity
        .iter()
        .find(|(p, _)| p.matches(reason))
        .map(|(_, s)| *s)
        .unwrap_or_else(|| builtin_severity(reason, event_type));
    let created_at = time(
        event,
        &[
            "/lastTimestamp",
            "/series/lastObservedTime",
            "/eventTime",
            "/metadata/creationTimestamp",
        ],
    )
    .unwrap_or_else(Utc::now);
    let first_observed = time(
        event,
        &[
            "/firstTimestamp",
            "/eventTime",
            "/metadata/creationTimestamp",
        ],
    )
    .unwrap_or(created_at);
    let count = event
        .get("count")
        .or_else(|| event.pointer("/series/count"))
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(1);
    let mut details = event.clone();
    if let Some(meta) = details.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    Ok(ExternalChange {
        target: ItemRef::Id(target),
        external_change_id: uid.to_string(),
        change_type: reason.to_string(),
        severity,
        source: text(
            event,
            &[
                "/source/component",
                "/reportingComponent",
                "/reportingController",
            ],
        )
        .unwrap_or("kubernetes")
        .to_string(),
        summary: text(event, &["/message", "/note"])
            .unwrap_or(reason)
            .trim()
            .to_string(),
        details: Some(details),
        count,
        first_observed: Some(first_observed),
        created_at: Some(created_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> EventOptions {
        EventOptions {
            enabled: true,
            exclude_reasons: vec![glob::Pattern::new("Pull*").expect("glob")],
            severity: vec![(
                glob::Pattern::new("Backoff*").expect("glob"),
                Severity::Critical,
            )],
        }
    }

    #[test]
    fn severity_table() {
        for (reason, kind, want) in [
            ("OOMKilling", "Warning", Severity::Critical),
            ("NodeNotReady", "Normal", Severity::Critical),
            ("BackOff", "Warning", Severity::High),
            ("FailedMount", "Warning", Severity::High),
            ("Unhealthy", "Warning", Severity::Medium),
            ("FailedCreatePodSandBox", "Warning", Severity::Medium),
            ("ImageError", "Warning", Severity::Medium),
            ("Killing", "Normal", Severity::Low),
            ("ScalingReplicaSet", "Normal", Severity::Low),
            ("DeleteSucceeded", "Normal", Severity::Low),
            ("SomethingOdd", "Warning", Severity::Low),
            ("Scheduled", "Normal", Severity::Info),
        ] {
            assert_eq!(builtin_severity(reason, Some(kind)), want, "{reason}");
        }
    }

    #[test]
    fn an_event_becomes_a_change() {
        let event = serde_json::json!({
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": "api-1.17f", "namespace": "payments", "uid": "e1", "managedFields": [{}]},
            "involvedObject": {"kind": "Pod", "uid": "5f0c2b7e-8a4d-4b1e-9a57-0a8e3c1d2b40"},
            "reason": "BackoffLimit", "message": " Back-off restarting failed container \n", "type": "Warning",
            "count": 7, "firstTimestamp": "2026-11-30T10:00:00Z", "lastTimestamp": "2026-11-30T10:05:00Z",
            "source": {"component": "kubelet", "host": "node-1"}
        });
        let change = to_change(&event, &options()).expect("change");
        assert_eq!(change.change_type, "BackoffLimit");
        assert_eq!(
            change.severity,
            Severity::Critical,
            "the config's map comes first"
        );
        assert_eq!(change.summary, "Back-off restarting failed container");
        assert_eq!((change.count, change.source.as_str()), (7, "kubelet"));
        assert_eq!(change.external_change_id, "e1");
        assert!(change.first_observed < change.created_at);
        assert!(
            change
                .details
                .expect("details")
                .pointer("/metadata/managedFields")
                .is_none()
        );
        let mut pulled = event.clone();
        pulled["reason"] = "Pulling".into();
        assert_eq!(to_change(&pulled, &options()), Err(Skipped::Excluded));
        let mut orphan = event;
        orphan["involvedObject"] = serde_json::json!({"kind": "Pod"});
        assert!(matches!(
            to_change(&orphan, &options()),
            Err(Skipped::Malformed(_))
        ));
    }
}
