//! Search parameters per resource type. Search mechanics (`_id`, `_lastUpdated`,
//! paging, sorting, `_include`, lenient handling, index upkeep) are in
//! search_mechanics.rs.

use serde_json::{json, Value};

use crate::helpers::{ids, TestApp};
use crate::test_both;

test_both!(
    referral_search_parameters,
    encounter_and_task_parameters,
    consent_careplan_and_directory_parameters,
    typed_parameters_read_their_twins_rows,
);

pub async fn seed_people(app: &TestApp) -> (String, String, String) {
    let p = app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Andrews"}]}))
        .await;
    let dr = app.create(&json!({"resourceType": "Practitioner", "name": [{"family": "Okafor", "given": ["Ada"]}]})).await;
    let org = app
        .create(&json!({"resourceType": "Organization", "name": "Riverside Cardiology"}))
        .await;
    (s(&p["id"]), s(&dr["id"]), s(&org["id"]))
}

pub fn s(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

pub fn referral(patient: &str, dr: &str, org: &str, status: &str, authored: &str) -> Value {
    json!({
        "resourceType": "ServiceRequest",
        "identifier": [{"system": "urn:example:referrals", "value": format!("R-{status}-{authored}")}],
        "status": status,
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "183519002"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "requester": {"reference": format!("Practitioner/{dr}")},
        "performer": [{"reference": format!("Organization/{org}")}],
        "authoredOn": authored
    })
}

async fn referral_search_parameters(app: TestApp) {
    let (p, dr, org) = seed_people(&app).await;
    let a = s(&app
        .create(&referral(&p, &dr, &org, "active", "2026-11-01"))
        .await["id"]);
    let b = s(&app
        .create(&referral(&p, &dr, &org, "draft", "2026-10-01"))
        .await["id"]);
    let other = s(&app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Baker"}]}))
        .await["id"]);
    let c = s(&app
        .create(&referral(&other, &dr, &org, "active", "2026-09-15"))
        .await["id"]);

    let found = |path: String| {
        let app = &app;
        async move {
            let mut v = ids(&app.search(&path).await);
            v.sort();
            v
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        found(format!("ServiceRequest?patient={p}")).await,
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(
        found(format!("ServiceRequest?subject=Patient/{p}")).await,
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(
        found("ServiceRequest?status=active".into()).await,
        sorted(vec![a.clone(), c.clone()])
    );
    assert_eq!(
        found("ServiceRequest?status=active,draft".into())
            .await
            .len(),
        3
    );
    assert_eq!(
        found("ServiceRequest?status:not=active".into()).await,
        vec![b.clone()]
    );
    assert_eq!(
        found(format!("ServiceRequest?status=active&patient={p}")).await,
        vec![a.clone()]
    );
    assert_eq!(
        found("ServiceRequest?category=http://snomed.info/sct|3457005".into())
            .await
            .len(),
        3
    );
    assert_eq!(
        found("ServiceRequest?category=http://loinc.org|3457005".into())
            .await
            .len(),
        0
    );
    assert_eq!(
        found("ServiceRequest?identifier=urn:example:referrals|R-draft-2026-10-01".into()).await,
        vec![b.clone()]
    );
    assert_eq!(
        found("ServiceRequest?identifier=R-draft-2026-10-01".into()).await,
        vec![b.clone()]
    );
    assert_eq!(
        found(format!("ServiceRequest?requester=Practitioner/{dr}"))
            .await
            .len(),
        3
    );
    assert_eq!(
        found(format!("ServiceRequest?performer={org}")).await.len(),
        3
    );
    assert_eq!(
        found(format!("ServiceRequest?performer:Organization={org}"))
            .await
            .len(),
        3
    );
    assert_eq!(
        found("ServiceRequest?authored=ge2026-10-01".into()).await,
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(
        found("ServiceRequest?authored=lt2026-10-01".into()).await,
        vec![c.clone()]
    );
    assert_eq!(
        found("ServiceRequest?authored=2026-10".into()).await,
        vec![b.clone()]
    );
    assert_eq!(
        found("ServiceRequest?authored=ge2026-09-20&authored=le2026-10-31".into()).await,
        vec![b.clone()]
    );
    // String search on the patient: prefix and case-insensitive.
    assert_eq!(found("Patient?name=andr".into()).await, vec![p.clone()]);
    assert_eq!(
        found("Patient?family:exact=Andrews".into()).await,
        vec![p.clone()]
    );
    assert_eq!(found("Patient?family:exact=andrews".into()).await.len(), 0);
    assert_eq!(
        found("Patient?name:contains=ake".into()).await,
        vec![other.clone()]
    );
}

async fn encounter_and_task_parameters(app: TestApp) {
    let (p, dr, org) = seed_people(&app).await;
    let loc = s(&app
        .create(&json!({"resourceType": "Organization", "name": "Ward 4"}))
        .await["id"]);
    let enc = app
        .create(&json!({
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": format!("Patient/{p}")},
            "participant": [{"individual": {"reference": format!("Practitioner/{dr}")}}],
            "period": {"start": "2026-11-10T08:00:00Z", "end": "2026-11-14T16:30:00Z"},
            "location": [{"location": {"reference": "Location/ward-4"}}],
            "serviceProvider": {"reference": format!("Organization/{loc}")}
        }))
        .await;
    let e = s(&enc["id"]);
    assert_eq!(
        ids(&app.search("Encounter?class=IMP").await),
        vec![e.clone()]
    );
    assert_eq!(
        ids(&app
            .search("Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB")
            .await)
        .len(),
        0
    );
    // Several values of one parameter (one subquery with the values ORed), with and
    // without a system, and mixed with a value that matches nothing.
    assert_eq!(
        ids(&app
            .search("Encounter?class=AMB,http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP")
            .await),
        vec![e.clone()]
    );
    assert_eq!(ids(&app.search("Encounter?class=AMB,EMER").await).len(), 0);
    assert_eq!(
        ids(&app.search("Encounter?location=Location/ward-4").await),
        vec![e.clone()]
    );
    assert_eq!(
        ids(&app
            .search(&format!("Encounter?patient={p}&status=finished"))
            .await),
        vec![e.clone()]
    );
    assert_eq!(
        ids(&app.search(&format!("Encounter?practitioner={dr}")).await),
        vec![e.clone()]
    );
    assert_eq!(
        ids(&app.search("Encounter?date=2026-11-12").await).len(),
        0,
        "eq needs the whole period inside the day"
    );
    assert_eq!(
        ids(&app.search("Encounter?date=ge2026-11-14").await),
        vec![e.clone()]
    );
    assert_eq!(
        ids(&app.search("Encounter?date=gt2026-11-15").await).len(),
        0
    );
    assert_eq!(
        ids(&app.search("Encounter?date=2026-11").await),
        vec![e.clone()]
    );

    // A draft: an active referral would get the gateway's own handoff Task (#6).
    let sr = s(&app
        .create(&referral(&p, &dr, &org, "draft", "2026-11-14"))
        .await["id"]);
    let task = app
        .create(&json!({
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "businessStatus": {"text": "awaiting triage", "coding": [{"system": "urn:example:bs", "code": "triage"}]},
            "focus": {"reference": format!("ServiceRequest/{sr}")},
            "for": {"reference": format!("Patient/{p}")},
            "requester": {"reference": format!("Practitioner/{dr}")},
            "owner": {"reference": format!("Organization/{org}")},
            "authoredOn": "2026-11-14T17:00:00Z"
        }))
        .await;
    let t = s(&task["id"]);
    assert_eq!(
        ids(&app.search(&format!("Task?owner=Organization/{org}")).await),
        vec![t.clone()]
    );
    assert_eq!(
        ids(&app.search(&format!("Task?requester={dr}")).await),
        vec![t.clone()]
    );
    assert_eq!(
        ids(&app.search(&format!("Task?focus=ServiceRequest/{sr}")).await),
        vec![t.clone()]
    );
    assert_eq!(
        ids(&app
            .search(&format!(
                "Task?focus=ServiceRequest/none,ServiceRequest/{sr}"
            ))
            .await),
        vec![t.clone()]
    );
    assert_eq!(
        ids(&app.search("Task?business-status=triage").await),
        vec![t.clone()]
    );
    assert_eq!(
        ids(&app
            .search(&format!(
                "Task?patient={p}&status=requested&focus=ServiceRequest/{sr}"
            ))
            .await),
        vec![t.clone()]
    );
    assert_eq!(ids(&app.search("Task?status=accepted").await).len(), 0);
}

async fn consent_careplan_and_directory_parameters(app: TestApp) {
    let (p, dr, org) = seed_people(&app).await;
    let consent = app
        .create(&json!({
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": format!("Patient/{p}")},
            "dateTime": "2026-11-01",
            "provision": {
                "type": "permit",
                "period": {"start": "2026-11-01", "end": "2027-11-01"},
                "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                           "reference": {"reference": format!("Organization/{org}")}}]
            }
        }))
        .await;
    let c = s(&consent["id"]);
    assert_eq!(
        ids(&app
            .search(&format!("Consent?actor=Organization/{org}"))
            .await),
        vec![c.clone()]
    );
    assert_eq!(
        ids(&app
            .search(&format!("Consent?patient={p}&status=active"))
            .await),
        vec![c.clone()]
    );
    assert_eq!(
        ids(&app
            .search("Consent?category=http://loinc.org|59284-0")
            .await),
        vec![c.clone()]
    );
    assert_eq!(
        ids(&app.search("Consent?date=2026-11-01").await),
        vec![c.clone()]
    );
    assert_eq!(
        ids(&app.search("Consent?period=ge2027-06-01").await),
        vec![c.clone()]
    );

    let plan = app
        .create(&json!({
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "code": "assess-plan"}]}],
            "subject": {"reference": format!("Patient/{p}")},
            "period": {"start": "2026-11-14"}
        }))
        .await;
    let cp = s(&plan["id"]);
    assert_eq!(
        ids(&app
            .search(&format!("CarePlan?patient={p}&status=active"))
            .await),
        vec![cp.clone()]
    );
    assert_eq!(
        ids(&app.search("CarePlan?category=assess-plan").await),
        vec![cp.clone()]
    );
    assert_eq!(
        ids(&app.search("CarePlan?date=ge2030-01-01").await),
        vec![cp.clone()],
        "open-ended period"
    );

    let role = app
        .create(&json!({
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": format!("Practitioner/{dr}")},
            "organization": {"reference": format!("Organization/{org}")}
        }))
        .await;
    assert_eq!(
        ids(&app
            .search(&format!("PractitionerRole?practitioner={dr}"))
            .await),
        vec![s(&role["id"])]
    );
    let ep = app
        .create(&json!({
            "resourceType": "Endpoint",
            "status": "active",
            "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
            "payloadType": [{"text": "FHIR"}],
            "address": "https://pcp.example.org/fhir",
            "managingOrganization": {"reference": format!("Organization/{org}")}
        }))
        .await;
    assert_eq!(
        ids(&app
            .search(&format!("Endpoint?organization={org}&status=active"))
            .await),
        vec![s(&ep["id"])]
    );
    assert_eq!(
        ids(&app.search("Organization?name=riverside").await),
        vec![org.clone()]
    );
    assert_eq!(
        ids(&app.search("Practitioner?given=ada").await),
        vec![dr.clone()]
    );
}

/// `patient` (the subject where it is a Patient) and Encounter's `practitioner` (the
/// participant where it is a Practitioner) keep no index rows of their own: they are
/// searched in `subject`'s and `participant`'s rows, and still match only references
/// of their types, also where another type's resource has the same id.
async fn typed_parameters_read_their_twins_rows(app: TestApp) {
    let enc = |subject: &str, who: &str| {
        json!({"resourceType": "Encounter", "status": "in-progress",
            "period": {"start": "2026-11-10T08:00:00Z"},
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": subject},
            "participant": [{"individual": {"reference": who}}]})
    };
    let patients = s(&app.create(&enc("Patient/same", "Practitioner/same")).await["id"]);
    let groups = s(&app
        .create(&enc("Group/same", "PractitionerRole/same"))
        .await["id"]);
    assert_eq!(
        app.ref_rows("Encounter", &patients).await,
        ["participant", "subject"],
        "one row per reference"
    );
    let (only_patients, only_groups) = (vec![patients.clone()], vec![groups.clone()]);
    let a = &app;
    let found = move |q: &'static str| async move { ids(&a.search(q).await) };
    assert_eq!(found("Encounter?patient=same").await, only_patients);
    assert_eq!(found("Encounter?patient=Patient/same").await, only_patients);
    assert_eq!(found("Encounter?patient:Patient=same").await, only_patients);
    assert_eq!(found("Encounter?practitioner=same").await, only_patients);
    assert_eq!(found("Encounter?subject=Group/same").await, only_groups);
    let mut both = found("Encounter?participant=same").await;
    both.sort();
    let mut expected = vec![patients.clone(), groups.clone()];
    expected.sort();
    assert_eq!(both, expected);
    let wrong_type = app
        .get("Encounter?practitioner=PractitionerRole/same")
        .await;
    assert_eq!(wrong_type.status(), 400);
    // `_include` of a typed parameter brings only its type's resources.
    app.put_json(
        "Practitioner/same",
        &json!({"resourceType": "Practitioner", "id": "same", "name": [{"family": "Okafor"}]}),
    )
    .await;
    let b = app
        .search(&format!(
            "Encounter?_id={patients},{groups}&_include=Encounter:practitioner"
        ))
        .await;
    let included: Vec<&str> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    assert_eq!(included.len(), 1, "{b}");
    assert!(included[0].ends_with("Practitioner/same"), "{b}");
    // A Task's `patient` is its `for`, read in `subject`'s rows.
    let task = app
        .create(
            &json!({"resourceType": "Task", "status": "requested", "intent": "order",
            "for": {"reference": "Patient/same"}}),
        )
        .await;
    assert_eq!(
        app.ref_rows("Task", task["id"].as_str().unwrap()).await,
        ["subject"]
    );
    assert_eq!(found("Task?patient=same").await, [s(&task["id"])]);
}
