//! The CapabilityStatement, generated from the same tables the server dispatches on,
//! so it states only what really works.

use serde_json::{json, Value};

use super::profiles::Profiles;
use super::search::params::{ParamKind, SUPPORTED};

const INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

/// `profiles`: their URLs are listed as `supportedProfile` of the types they
/// constrain (each is enforced on write when a resource claims it).
pub fn capability_statement(base: &str, profiles: &Profiles) -> Value {
    let by_type = profiles.by_type();
    let resources: Vec<Value> = SUPPORTED
        .iter()
        .map(|(rtype, params)| {
            let mut search_param = vec![
                json!({"name": "_id", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"}),
                json!({"name": "_lastUpdated", "type": "date", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"}),
            ];
            search_param.extend(params.iter().map(|p| {
                json!({
                    "name": p.name,
                    "type": match p.kind {
                        ParamKind::Token => "token",
                        ParamKind::String => "string",
                        ParamKind::Date => "date",
                        ParamKind::Reference => "reference",
                    },
                })
            }));
            let includes: Vec<String> = params
                .iter()
                .filter(|p| p.kind == ParamKind::Reference)
                .map(|p| format!("{rtype}:{}", p.name))
                .collect();
            // Basic holds the gateway's SubscriptionTopics, AuditEvent the disclosure
            // ledger: both read-only.
            let read_only = super::search::params::is_read_only(rtype);
            let interactions: Vec<Value> = INTERACTIONS
                .iter()
                .filter(|c| !read_only || !matches!(**c, "update" | "delete" | "create"))
                .map(|c| json!({"code": c}))
                .collect();
            let mut resource = json!({
                "type": rtype,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{rtype}"),
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "searchInclude": includes,
                "searchParam": search_param,
                "operation": [{"name": "validate",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}],
            });
            if let Some(urls) = by_type.get(rtype) {
                resource["supportedProfile"] = json!(urls);
            }
            if read_only {
                for k in ["updateCreate", "conditionalCreate", "conditionalUpdate"] {
                    resource[k] = json!(false);
                }
                resource["conditionalDelete"] = json!("not-supported");
            }
            if *rtype == "Subscription" {
                resource["extension"] = json!(crate::topics::catalog::all()
                    .iter()
                    .map(|t| json!({"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical",
                        "valueCanonical": t.url}))
                    .collect::<Vec<_>>());
                resource["operation"].as_array_mut().expect("an array").extend([
                    json!({"name": "status", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"}),
                    json!({"name": "events", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events"}),
                ]);
            }
            resource
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": env!("HANDOFF_BUILD_DATE"),
        "publisher": "handoff",
        "kind": "instance",
        "instantiates": ["http://hl7.org/fhir/uv/subscriptions-backport/CapabilityStatement/backport-subscription-server-r4"],
        "software": {"name": "handoff", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "handoff care-coordination gateway", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json", "xml"],
        "patchFormat": [],
        "rest": [{
            "mode": "server",
            "documentation": "Unknown search parameters are refused (400) unless the request carries Prefer: handling=lenient. \
                A resource claiming a supportedProfile in meta.profile is validated against it on write \
                (422 with every issue when it does not conform); claims of other profiles are accepted unchecked.",
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
            "operation": [{"name": "process-message",
                "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"}],
        }],
    })
}
