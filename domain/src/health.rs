//! Built-in health rules (SPEC §6): pure functions of `(type, config, now)`.
//!
//! Kubernetes kinds get their own rules (core workloads, nodes, storage,
//! networking, HPA, cert-manager, Flux and Argo CD); any other object falls
//! back to a `Ready`/`Available` condition, then to a `status`/`state`/
//! `phase` field. Add-on kinds are matched by kind and, when the object
//! names one, by API group, so a `Certificate` of another group falls back.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::model::{Health, HealthResult};

/// Evaluates the built-in rules for an item.
pub fn evaluate(item_type: &str, config: &Value, now: DateTime<Utc>) -> HealthResult {
    if let Some(kind) = item_type.strip_prefix("Kubernetes::") {
        if let Some(result) = terminating(config, now) {
            return result;
        }
        let result = match kind {
            "Pod" => Some(pod(config, now)),
            "Deployment" | "StatefulSet" | "ReplicaSet" => Some(replicated(kind, config, now)),
            "DaemonSet" => Some(daemon_set(config)),
            "Node" => Some(node(config)),
            "PersistentVolumeClaim" | "PersistentVolume" => Some(volume(config)),
            "Service" => Some(service(config, now)),
            "Ingress" => Some(ingress(config, now)),
            "Namespace" => Some(namespace(config)),
            "Job" => Some(job(config)),
            "CronJob" => Some(cron_job(config)),
            "HorizontalPodAutoscaler" => Some(hpa(config)),
            "Certificate" if in_group(config, "cert-manager.io") => Some(certificate(config, now)),
            "Kustomization" | "HelmRelease" | "GitRepository" | "HelmRepository"
            | "OCIRepository" | "Bucket" | "HelmChart"
                if in_group(config, "fluxcd.io") =>
            {
                Some(flux(config))
            }
            "Application" if in_group(config, "argoproj.io") => Some(argo_application(config)),
            _ => None,
        };
        if let Some(result) = result {
            return result;
        }
    }
    fallback(config)
}

fn result(health: Health, status: &str, ready: bool, message: Option<String>) -> HealthResult {
    HealthResult {
        health,
        status: Some(status.to_string()),
        ready,
        message,
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |acc, key| acc.get(*key))?.as_str()
}

fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    path.iter().try_fold(v, |acc, key| acc.get(*key))?.as_i64()
}

fn time_at(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    str_at(v, path)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn condition<'a>(config: &'a Value, kind: &str) -> Option<&'a Value> {
    config
        .get("status")?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn condition_status<'a>(config: &'a Value, kind: &str) -> Option<&'a str> {
    condition(config, kind)?.get("status")?.as_str()
}

fn condition_field(config: &Value, kind: &str, field: &str) -> Option<String> {
    condition(config, kind)?
        .get(field)?
        .as_str()
        .map(str::to_string)
}

/// True when the object's `apiVersion` belongs to `group` (or a subgroup
/// of it), or when it names no `apiVersion` at all.
fn in_group(config: &Value, group: &str) -> bool {
    match config.get("apiVersion").and_then(Value::as_str) {
        None => true,
        Some(api_version) => {
            let api_group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            api_group == group || api_group.ends_with(&format!(".{group}"))
        }
    }
}

fn terminating(config: &Value, now: DateTime<Utc>) -> Option<HealthResult> {
    let since = time_at(config, &["metadata", "deletionTimestamp"])?;
    Some(if now - since > Duration::hours(1) {
        result(Health::Warning, "TerminatingStalled", false, None)
    } else {
        result(Health::Unknown, "Terminating", false, None)
    })
}

fn start_grace(config: &Value) -> Duration {
    let mut grace = Duration::minutes(10);
    let containers = config
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in containers {
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            if let Some(p) = c.get(probe) {
                let initial = p
                    .get("initialDelaySeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let threshold = p
                    .get("failureThreshold")
                    .and_then(Value::as_i64)
                    .unwrap_or(3);
                let period = p.get("periodSeconds").and_then(Value::as_i64).unwrap_or(10);
                let timeout = p.get("timeoutSeconds").and_then(Value::as_i64).unwrap_or(1);
                grace = grace.max(Duration::seconds(initial + threshold * (period + timeout)));
            }
        }
    }
    grace
}

fn pod(config: &Value, now: DateTime<Utc>) -> HealthResult {
    let phase = str_at(config, &["status", "phase"]).unwrap_or("Unknown");
    match phase {
        "Succeeded" => return result(Health::Healthy, "Completed", false, None),
        "Failed" => {
            let reason = str_at(config, &["status", "reason"]).unwrap_or("Failed");
            let message = str_at(config, &["status", "message"]).map(str::to_string);
            if reason == "Evicted" {
                return result(Health::Warning, "Evicted", false, message);
            }
            return result(Health::Unhealthy, reason, false, message);
        }
        _ => {}
    }
    let started = time_at(config, &["status", "startTime"])
        .or_else(|| time_at(config, &["metadata", "creationTimestamp"]));
    let in_grace = started.is_some_and(|s| now - s < start_grace(config));
    let statuses: Vec<&Value> = ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|k| {
            config
                .pointer(&format!("/status/{k}"))
                .and_then(Value::as_array)
        })
        .flatten()
        .collect();

    for cs in &statuses {
        if let Some(reason) = str_at(cs, &["state", "waiting", "reason"]) {
            let bad = reason.ends_with("BackOff")
                || reason.starts_with("Err")
                || reason.ends_with("Error");
            if bad {
                let message = str_at(cs, &["state", "waiting", "message"]).map(str::to_string);
                let oom = str_at(cs, &["lastState", "terminated", "reason"]) == Some("OOMKilled");
                if in_grace && !oom {
                    return result(Health::Unknown, "Starting", false, message);
                }
                return result(Health::Unhealthy, reason, false, message);
            }
        }
    }
    for cs in &statuses {
        let Some(term) = cs.pointer("/lastState/terminated") else {
            continue;
        };
        if term.get("exitCode").and_then(Value::as_i64).unwrap_or(0) == 0 {
            continue;
        }
        let reason = term
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("Error");
        if let Some(finished) = time_at(term, &["finishedAt"]) {
            let ago = now - finished;
            let message = Some(format!("{reason} {} ago", humanize(ago)));
            if ago < Duration::hours(1) && (!in_grace || reason == "OOMKilled") {
                return result(Health::Unhealthy, reason, false, message);
            }
            if ago < Duration::hours(24) {
                let ready = condition_status(config, "Ready") == Some("True");
                return result(Health::Warning, "Restarted", ready, message);
            }
        }
    }
    // A pod the scheduler cannot place is stuck, not starting, once its
    // start grace is over.
    if let Some(scheduled) = condition(config, "PodScheduled")
        && scheduled.get("status").and_then(Value::as_str) == Some("False")
        && scheduled.get("reason").and_then(Value::as_str) == Some("Unschedulable")
    {
        let message = scheduled
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string);
        if in_grace {
            return result(Health::Unknown, "Starting", false, message);
        }
        return result(Health::Unhealthy, "Unschedulable", false, message);
    }
    match condition_status(config, "Ready") {
        Some("True") => result(Health::Healthy, "Running", true, None),
        _ if in_grace || phase == "Pending" => result(Health::Unknown, "Starting", false, None),
        _ => {
            let message = condition(config, "Ready")
                .and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string);
            result(Health::Unhealthy, "NotReady", false, message)
        }
    }
}

fn humanize(d: Duration) -> String {
    if d < Duration::minutes(1) {
        format!("{}s", d.num_seconds().max(0))
    } else if d < Duration::hours(1) {
        format!("{}m", d.num_minutes())
    } else {
        format!("{}h", d.num_hours())
    }
}

fn replicated(kind: &str, config: &Value, now: DateTime<Utc>) -> HealthResult {
    let desired = int_at(config, &["spec", "replicas"]).unwrap_or(1);
    let ready = int_at(config, &["status", "readyReplicas"]).unwrap_or(0);
    let current = int_at(config, &["status", "replicas"]).unwrap_or(0);
    let updated = int_at(config, &["status", "updatedReplicas"]).unwrap_or(current);
    let message = Some(format!("{ready}/{desired} ready"));

    if condition_status(config, "ReplicaFailure") == Some("True") {
        return result(Health::Unhealthy, "Failed Create", false, message);
    }
    if desired == 0 {
        return result(Health::Unknown, "Scaled to Zero", true, message);
    }
    let mut health = if ready >= desired {
        Health::Healthy
    } else if ready > 0 {
        Health::Warning
    } else {
        Health::Unhealthy
    };
    let progressing = condition(config, "Progressing");
    let deadline_exceeded = progressing
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        == Some("ProgressDeadlineExceeded");
    let status = if deadline_exceeded {
        health = health.max(Health::Warning);
        "Rollout Failed"
    } else if config.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        "Suspended"
    } else if kind != "ReplicaSet" && updated < desired {
        "Rolling Out"
    } else if current > desired {
        "Scaling Down"
    } else if current < desired {
        "Scaling Up"
    } else {
        "Running"
    };
    let created = time_at(config, &["metadata", "creationTimestamp"]);
    if ready == 0 && created.is_some_and(|c| now - c < Duration::minutes(10)) {
        return result(Health::Unknown, "Starting", false, message);
    }
    result(health, status, ready >= desired, message)
}

fn daemon_set(config: &Value) -> HealthResult {
    let desired = int_at(config, &["status", "desiredNumberScheduled"]).unwrap_or(0);
    let ready = int_at(config, &["status", "numberReady"]).unwrap_or(0);
    let message = Some(format!("{ready}/{desired} ready"));
    if ready >= desired {
        result(Health::Healthy, "Running", true, message)
    } else if ready > 0 {
        result(Health::Warning, "PartiallyAvailable", false, message)
    } else {
        result(Health::Unhealthy, "Unavailable", false, message)
    }
}

fn node(config: &Value) -> HealthResult {
    if condition_status(config, "Ready") != Some("True") {
        let message = condition(config, "Ready")
            .and_then(|c| c.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string);
        return result(Health::Unhealthy, "NotReady", false, message);
    }
    if condition_status(config, "NetworkUnavailable") == Some("True") {
        return result(Health::Unhealthy, "NetworkUnavailable", false, None);
    }
    for pressure in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        if condition_status(config, pressure) == Some("True") {
            let message = condition(config, pressure)
                .and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string);
            return result(Health::Warning, pressure, true, message);
        }
    }
    if config
        .pointer("/spec/unschedulable")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return result(Health::Warning, "Cordoned", true, None);
    }
    result(Health::Healthy, "Ready", true, None)
}

fn volume(config: &Value) -> HealthResult {
    let phase = str_at(config, &["status", "phase"]).unwrap_or("Unknown");
    match phase {
        "Bound" | "Available" => result(Health::Healthy, phase, true, None),
        "Pending" => result(Health::Unknown, phase, false, None),
        "Lost" | "Failed" => result(Health::Unhealthy, phase, false, None),
        "Released" => result(Health::Warning, phase, false, None),
        other => result(Health::Unknown, other, false, None),
    }
}

fn has_lb_address(config: &Value) -> bool {
    config
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

fn pending_address(config: &Value, now: DateTime<Utc>) -> HealthResult {
    let created = time_at(config, &["metadata", "creationTimestamp"]);
    if created.is_some_and(|c| now - c > Duration::hours(1)) {
        result(
            Health::Unhealthy,
            "Pending",
            false,
            Some("no load balancer address".into()),
        )
    } else {
        result(Health::Unknown, "Pending", false, None)
    }
}

fn service(config: &Value, now: DateTime<Utc>) -> HealthResult {
    let kind = str_at(config, &["spec", "type"]).unwrap_or("ClusterIP");
    if kind != "LoadBalancer" {
        return result(Health::Unknown, kind, true, None);
    }
    if has_lb_address(config) {
        result(Health::Healthy, "Provisioned", true, None)
    } else {
        pending_address(config, now)
    }
}

fn ingress(config: &Value, now: DateTime<Utc>) -> HealthResult {
    if has_lb_address(config) {
        result(Health::Healthy, "Provisioned", true, None)
    } else {
        pending_address(config, now)
    }
}

fn namespace(config: &Value) -> HealthResult {
    let phase = str_at(config, &["status", "phase"]).unwrap_or("Active");
    result(Health::Unknown, phase, phase == "Active", None)
}

fn job(config: &Value) -> HealthResult {
    if condition_status(config, "Failed") == Some("True") {
        let message = condition(config, "Failed")
            .and_then(|c| c.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string);
        return result(Health::Unhealthy, "Failed", false, message);
    }
    if condition_status(config, "Complete") == Some("True") {
        return result(Health::Healthy, "Completed", true, None);
    }
    result(Health::Unknown, "Running", false, None)
}

fn cron_job(config: &Value) -> HealthResult {
    if config.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return result(Health::Unknown, "Suspended", true, None);
    }
    let running = config
        .pointer("/status/active")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if running {
        return result(Health::Healthy, "Running", true, None);
    }
    let scheduled = time_at(config, &["status", "lastScheduleTime"]);
    let succeeded = time_at(config, &["status", "lastSuccessfulTime"]);
    match (scheduled, succeeded) {
        (Some(s), Some(ok)) if ok < s => result(Health::Unhealthy, "Last run failed", false, None),
        (Some(_), None) => result(Health::Unhealthy, "Last run failed", false, None),
        (None, _) => result(Health::Unknown, "Not Scheduled", true, None),
        _ => result(Health::Healthy, "Scheduled", true, None),
    }
}

fn hpa(config: &Value) -> HealthResult {
    for kind in ["ScalingActive", "AbleToScale"] {
        if condition_status(config, kind) == Some("False") {
            let reason =
                condition_field(config, kind, "reason").unwrap_or_else(|| format!("Not{kind}"));
            return result(
                Health::Unhealthy,
                &reason,
                false,
                condition_field(config, kind, "message"),
            );
        }
    }
    if condition_status(config, "ScalingLimited") == Some("True") {
        let message = condition_field(config, "ScalingLimited", "message");
        return result(Health::Warning, "ScalingLimited", true, message);
    }
    result(Health::Healthy, "Active", true, None)
}

fn certificate(config: &Value, now: DateTime<Utc>) -> HealthResult {
    let not_after = time_at(config, &["status", "notAfter"]);
    if let Some(expiry) = not_after.filter(|t| *t <= now) {
        let message = Some(format!("expired {} ago", humanize(now - expiry)));
        return result(Health::Unhealthy, "Expired", false, message);
    }
    let message = condition_field(config, "Ready", "message");
    if condition_status(config, "Ready") == Some("True") {
        if let Some(expiry) = not_after.filter(|t| *t - now < Duration::days(2)) {
            let left = Some(format!("expires in {}", humanize(expiry - now)));
            return result(Health::Warning, "Expiring", true, left);
        }
        return result(Health::Healthy, "Issued", true, message);
    }
    let since = condition(config, "Ready")
        .and_then(|c| time_at(c, &["lastTransitionTime"]))
        .or_else(|| time_at(config, &["metadata", "creationTimestamp"]));
    if since.is_none_or(|t| now - t > Duration::hours(1)) {
        let reason =
            condition_field(config, "Ready", "reason").unwrap_or_else(|| "NotReady".into());
        return result(Health::Unhealthy, &reason, false, message);
    }
    result(Health::Unknown, "Issuing", false, message)
}

/// Flux's toolkit objects share the `Ready` condition protocol.
fn flux(config: &Value) -> HealthResult {
    if config.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return result(Health::Unknown, "Suspended", false, None);
    }
    let conditions = config
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let retrying = conditions
        .iter()
        .find(|c| c.get("reason").and_then(Value::as_str) == Some("ProgressingWithRetry"));
    if let Some(c) = retrying {
        let message = c.get("message").and_then(Value::as_str).map(str::to_string);
        return result(Health::Warning, "ProgressingWithRetry", false, message);
    }
    if condition_status(config, "ArtifactOutdated") == Some("True") {
        let message = condition_field(config, "ArtifactOutdated", "message");
        return result(Health::Warning, "ArtifactOutdated", false, message);
    }
    let message = condition_field(config, "Ready", "message");
    match condition_status(config, "Ready") {
        Some("True") => result(Health::Healthy, "Ready", true, message),
        Some("False") => {
            let reason =
                condition_field(config, "Ready", "reason").unwrap_or_else(|| "NotReady".into());
            result(Health::Unhealthy, &reason, false, message)
        }
        _ => result(Health::Unknown, "Progressing", false, message),
    }
}

fn argo_application(config: &Value) -> HealthResult {
    let health = str_at(config, &["status", "health", "status"]).unwrap_or("Unknown");
    let sync = str_at(config, &["status", "sync", "status"]).unwrap_or("Unknown");
    let message = str_at(config, &["status", "health", "message"])
        .or_else(|| str_at(config, &["status", "operationState", "message"]))
        .map(str::to_string);
    let verdict = match health {
        "Healthy" => Health::Healthy,
        "Degraded" | "Missing" => Health::Unhealthy,
        _ => Health::Unknown,
    };
    result(
        verdict,
        &format!("{health}/{sync}"),
        sync == "Synced",
        message,
    )
}

/// The fallback for kinds without a rule, and for non-Kubernetes items.
pub fn fallback(config: &Value) -> HealthResult {
    for kind in ["Ready", "Available"] {
        if let Some(status) = condition_status(config, kind) {
            let message = condition(config, kind)
                .and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string);
            return match status {
                "True" => result(Health::Healthy, kind, true, message),
                "False" => result(Health::Unhealthy, &format!("Not{kind}"), false, message),
                _ => result(Health::Unknown, "Unknown", false, message),
            };
        }
    }
    let field = ["status", "state", "phase"].iter().find_map(|k| {
        config.get(*k).and_then(Value::as_str).or_else(|| {
            config
                .pointer(&format!("/status/{k}"))
                .and_then(Value::as_str)
        })
    });
    if let Some(value) = field {
        let health = match value.to_ascii_lowercase().as_str() {
            "running" | "active" | "succeeded" | "available" | "online" | "ready" | "ok"
            | "healthy" | "bound" => Health::Healthy,
            "failed" | "error" | "offline" | "unhealthy" | "crashed" => Health::Unhealthy,
            "degraded" | "warning" | "impaired" => Health::Warning,
            _ => Health::Unknown,
        };
        return result(health, value, health == Health::Healthy, None);
    }
    HealthResult::unknown()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn crashlooping_pod_is_unhealthy() {
        let pod = json!({"status": {"phase": "Running", "startTime": "2026-11-20T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"ready": false, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}});
        let r = evaluate("Kubernetes::Pod", &pod, now());
        assert_eq!(
            (r.health, r.status.as_deref(), r.ready),
            (Health::Unhealthy, Some("CrashLoopBackOff"), false)
        );
    }

    #[test]
    fn backoff_inside_start_grace_is_starting() {
        let pod = json!({"status": {"phase": "Pending", "startTime": "2026-11-24T11:58:00Z",
            "containerStatuses": [{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        assert_eq!(
            evaluate("Kubernetes::Pod", &pod, now()).status.as_deref(),
            Some("Starting")
        );
    }

    #[test]
    fn ready_pod_and_recent_restart() {
        let ready = json!({"status": {"phase": "Running", "startTime": "2026-11-20T00:00:00Z", "conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(
            evaluate("Kubernetes::Pod", &ready, now()).health,
            Health::Healthy
        );
        let restarted = json!({"status": {"phase": "Running", "startTime": "2026-11-20T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-11-24T06:00:00Z"}}}]}});
        let r = evaluate("Kubernetes::Pod", &restarted, now());
        assert_eq!(
            (r.health, r.status.as_deref()),
            (Health::Warning, Some("Restarted"))
        );
    }

    #[test]
    fn deployments() {
        let partial = json!({"spec": {"replicas": 3}, "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3}});
        let r = evaluate("Kubernetes::Deployment", &partial, now());
        assert_eq!(
            (r.health, r.message.as_deref()),
            (Health::Warning, Some("2/3 ready"))
        );
        let zero = json!({"spec": {"replicas": 0}, "status": {}});
        assert_eq!(
            evaluate("Kubernetes::Deployment", &zero, now())
                .status
                .as_deref(),
            Some("Scaled to Zero")
        );
        let none =
            json!({"spec": {"replicas": 2}, "status": {"replicas": 2, "updatedReplicas": 2}});
        assert_eq!(
            evaluate("Kubernetes::Deployment", &none, now()).health,
            Health::Unhealthy
        );
    }

    #[test]
    fn nodes_volumes_and_fallback() {
        let pressure = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "True"}]}});
        assert_eq!(
            evaluate("Kubernetes::Node", &pressure, now()).health,
            Health::Warning
        );
        let pending = json!({"status": {"phase": "Pending"}});
        assert_eq!(
            evaluate("Kubernetes::PersistentVolumeClaim", &pending, now()).health,
            Health::Unknown
        );
        assert_eq!(
            evaluate("AWS::EC2::Instance", &json!({"state": "failed"}), now()).health,
            Health::Unhealthy
        );
        assert_eq!(
            evaluate("Custom::Thing", &json!({"x": 1}), now()),
            HealthResult::unknown()
        );
        let deleting = json!({"metadata": {"deletionTimestamp": "2026-11-24T09:00:00Z"}});
        assert_eq!(
            evaluate("Kubernetes::Pod", &deleting, now())
                .status
                .as_deref(),
            Some("TerminatingStalled")
        );
    }

    fn verdict(item_type: &str, config: Value) -> (Health, String, bool) {
        let r = evaluate(item_type, &config, now());
        (r.health, r.status.unwrap_or_default(), r.ready)
    }

    #[test]
    fn starting_deployment_and_running_cron_job() {
        let fresh = json!({"metadata": {"creationTimestamp": "2026-11-24T11:55:00Z"},
            "spec": {"replicas": 2}, "status": {"replicas": 2}});
        assert_eq!(
            verdict("Kubernetes::Deployment", fresh),
            (Health::Unknown, "Starting".into(), false)
        );
        let old = json!({"metadata": {"creationTimestamp": "2026-11-24T10:00:00Z"},
            "spec": {"replicas": 2}, "status": {"replicas": 2}});
        assert_eq!(verdict("Kubernetes::Deployment", old).0, Health::Unhealthy);
        let running = json!({"status": {"active": [{"name": "backup-1"}],
            "lastScheduleTime": "2026-11-24T11:00:00Z", "lastSuccessfulTime": "2026-11-23T11:00:00Z"}});
        assert_eq!(
            verdict("Kubernetes::CronJob", running),
            (Health::Healthy, "Running".into(), true)
        );
    }

    #[test]
    fn horizontal_pod_autoscalers() {
        let cannot = json!({"status": {"conditions": [
            {"type": "AbleToScale", "status": "True"},
            {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "no metrics"}]}});
        assert_eq!(
            verdict("Kubernetes::HorizontalPodAutoscaler", cannot),
            (Health::Unhealthy, "FailedGetResourceMetric".into(), false)
        );
        let limited = json!({"status": {"conditions": [
            {"type": "AbleToScale", "status": "True"}, {"type": "ScalingActive", "status": "True"},
            {"type": "ScalingLimited", "status": "True", "message": "at max replicas"}]}});
        assert_eq!(
            verdict("Kubernetes::HorizontalPodAutoscaler", limited).0,
            Health::Warning
        );
        let fine = json!({"status": {"conditions": [{"type": "ScalingActive", "status": "True"}]}});
        assert_eq!(
            verdict("Kubernetes::HorizontalPodAutoscaler", fine).0,
            Health::Healthy
        );
    }

    #[test]
    fn cert_manager_certificates() {
        let cert = |not_after: &str, ready: &str, since: &str| {
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "status": {"notAfter": not_after, "conditions": [
                    {"type": "Ready", "status": ready, "reason": "Pending", "lastTransitionTime": since}]}})
        };
        let at = "2026-11-20T00:00:00Z";
        assert_eq!(
            verdict(
                "Kubernetes::Certificate",
                cert("2026-11-24T11:00:00Z", "True", at)
            ),
            (Health::Unhealthy, "Expired".into(), false)
        );
        assert_eq!(
            verdict(
                "Kubernetes::Certificate",
                cert("2026-11-25T12:00:00Z", "True", at)
            ),
            (Health::Warning, "Expiring".into(), true)
        );
        assert_eq!(
            verdict(
                "Kubernetes::Certificate",
                cert("2027-02-01T00:00:00Z", "True", at)
            ),
            (Health::Healthy, "Issued".into(), true)
        );
        assert_eq!(
            verdict(
                "Kubernetes::Certificate",
                cert("2027-02-01T00:00:00Z", "False", at)
            )
            .0,
            Health::Unhealthy
        );
        let recent = "2026-11-24T11:50:00Z";
        assert_eq!(
            verdict(
                "Kubernetes::Certificate",
                cert("2027-02-01T00:00:00Z", "False", recent)
            ),
            (Health::Unknown, "Issuing".into(), false)
        );
        // A Certificate of another API group is not cert-manager's: the
        // generic Ready fallback applies.
        let other = json!({"apiVersion": "acme.example.com/v1", "status": {"notAfter": "2020-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(verdict("Kubernetes::Certificate", other).0, Health::Healthy);
    }

    #[test]
    fn flux_objects() {
        let flux = |conditions: Value, suspend: bool| {
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "spec": {"suspend": suspend},
                "status": {"conditions": conditions}})
        };
        let ready = flux(
            json!([{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}]),
            false,
        );
        assert_eq!(
            verdict("Kubernetes::Kustomization", ready).0,
            Health::Healthy
        );
        let failed = flux(
            json!([{"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "kustomize build failed"}]),
            false,
        );
        let r = evaluate("Kubernetes::Kustomization", &failed, now());
        assert_eq!(
            (r.health, r.status.as_deref(), r.message.as_deref()),
            (
                Health::Unhealthy,
                Some("BuildFailed"),
                Some("kustomize build failed")
            )
        );
        let retrying = flux(
            json!([{"type": "Ready", "status": "False", "reason": "ProgressingWithRetry"}]),
            false,
        );
        assert_eq!(
            verdict("Kubernetes::HelmRelease", retrying).0,
            Health::Warning
        );
        let outdated = flux(
            json!([{"type": "Ready", "status": "True"}, {"type": "ArtifactOutdated", "status": "True"}]),
            false,
        );
        assert_eq!(
            verdict("Kubernetes::GitRepository", outdated).0,
            Health::Warning
        );
        let suspended = flux(json!([{"type": "Ready", "status": "False"}]), true);
        assert_eq!(
            verdict("Kubernetes::Kustomization", suspended),
            (Health::Unknown, "Suspended".into(), false)
        );
    }

    #[test]
    fn argo_cd_applications() {
        let app = |health: &str, sync: &str| {
            json!({"apiVersion": "argoproj.io/v1alpha1",
                "status": {"health": {"status": health}, "sync": {"status": sync}}})
        };
        assert_eq!(
            verdict("Kubernetes::Application", app("Healthy", "Synced")),
            (Health::Healthy, "Healthy/Synced".into(), true)
        );
        assert_eq!(
            verdict("Kubernetes::Application", app("Degraded", "OutOfSync")),
            (Health::Unhealthy, "Degraded/OutOfSync".into(), false)
        );
        assert_eq!(
            verdict("Kubernetes::Application", app("Missing", "OutOfSync")).0,
            Health::Unhealthy
        );
        assert_eq!(
            verdict("Kubernetes::Application", app("Progressing", "Synced")),
            (Health::Unknown, "Progressing/Synced".into(), true)
        );
    }
}
