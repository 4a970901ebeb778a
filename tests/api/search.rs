//! Search parameters, paging, sorting, _include, lenient handling.

use serde_json::{json, Value};

use crate::helpers::{assert_outcome, ids, TestApp};
use crate::test_both;

test_both!(
    referral_search_parameters,
    encounter_and_task_parameters,
    consent_careplan_and_directory_parameters,
    last_updated_and_id,
    paging_and_sort,
    include_patient,
    unknown_parameters,
    index_follows_updates_and_deletes,
);

async fn seed_people(app: &TestApp) -> (String, String, String) {
    let p = app
        .create(&json!({"resourceType": "Patient", "name": [{"family": "Andrews"}]}))
        .await;
    let dr = app.create(&json!({"resourceType": "Practitioner", "name": [{"family": "Okafor", "given": ["Ada"]}]})).await;
    let org = app
        .create(&json!({"resourceType": "Organization", "name": "Riverside Cardiology"}))
        .await;
    (s(&p["id"]), s(&dr["id"]), s(&org["id"]))
}

fn s(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

fn referral(patient: &str, dr: &str, org: &str, status: &str, authored: &str) -> Value {
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

async fn last_updated_and_id(app: TestApp) {
    let a = app
        .create(&json!({"resourceType": "Organization", "name": "A"}))
        .await;
    let stamp = s(&a["meta"]["lastUpdated"]);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let b = app
        .create(&json!({"resourceType": "Organization", "name": "B"}))
        .await;
    let (a, b) = (s(&a["id"]), s(&b["id"]));
    assert_eq!(
        ids(&app.search(&format!("Organization?_id={a}")).await),
        vec![a.clone()]
    );
    assert_eq!(
        ids(&app.search(&format!("Organization?_id={a},{b}")).await).len(),
        2
    );
    let enc = |v: &str| v.replace('+', "%2B").replace(':', "%3A");
    assert_eq!(
        ids(&app
            .search(&format!("Organization?_lastUpdated=gt{}", enc(&stamp)))
            .await),
        vec![b.clone()]
    );
    assert_eq!(
        ids(&app
            .search(&format!("Organization?_lastUpdated=le{}", enc(&stamp)))
            .await),
        vec![a.clone()]
    );
    assert_eq!(
        ids(&app
            .search(&format!("Organization?_lastUpdated=lt{}", enc(&stamp)))
            .await)
        .len(),
        0
    );
    assert_eq!(
        ids(&app
            .search(&format!("Organization?_lastUpdated=ge{}", enc(&stamp)))
            .await)
        .len(),
        2
    );
    assert_eq!(
        ids(&app
            .search("Organization?_lastUpdated=ge2000-01-01&_lastUpdated=le2999")
            .await)
        .len(),
        2
    );
}

async fn paging_and_sort(app: TestApp) {
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(s(&app
            .create(&json!({"resourceType": "Organization", "name": format!("Org {i}")}))
            .await["id"]));
    }
    // Follow next links to the end: every resource exactly once, in order.
    let mut seen = Vec::new();
    let mut url = app.url("Organization?_count=3");
    loop {
        let page: Value = app
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["total"], 7);
        seen.extend(ids(&page));
        match page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(next) => url = s(&next["url"]),
            None => break,
        }
    }
    assert_eq!(seen, created);
    let newest_first = ids(&app
        .search("Organization?_sort=-_lastUpdated&_count=100")
        .await);
    let mut reversed = created.clone();
    reversed.reverse();
    assert_eq!(newest_first, reversed);
    assert_eq!(app.search("Organization?_count=0").await["total"], 7);
    assert_outcome(
        app.get("Organization?_sort=name").await,
        400,
        "not-supported",
        None,
    )
    .await;
    assert_outcome(
        app.get("Organization?_count=many").await,
        400,
        "value",
        None,
    )
    .await;
}

async fn include_patient(app: TestApp) {
    let (p, dr, org) = seed_people(&app).await;
    app.create(&referral(&p, &dr, &org, "active", "2026-11-01"))
        .await;
    app.create(&referral(&p, &dr, &org, "draft", "2026-11-02"))
        .await;
    let b = app
        .search("ServiceRequest?_include=ServiceRequest:patient")
        .await;
    let entries = b["entry"].as_array().unwrap();
    let included: Vec<&Value> = entries
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .collect();
    assert_eq!(included.len(), 1, "the shared patient is included once");
    assert_eq!(included[0]["resource"]["id"], json!(p));
    assert_eq!(b["total"], 2, "total counts matches only");
    assert_outcome(
        app.get("ServiceRequest?_include=ServiceRequest:status")
            .await,
        400,
        "not-supported",
        None,
    )
    .await;
}

async fn unknown_parameters(app: TestApp) {
    let r = app.get("Encounter?colour=blue").await;
    assert_outcome(r, 400, "not-supported", Some("Encounter?colour")).await;
    let r = app
        .client
        .get(app.url("Encounter?colour=blue"))
        .header("Prefer", "handling=lenient")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let outcome = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .unwrap();
    assert_eq!(outcome["resource"]["issue"][0]["severity"], "warning");
    assert_outcome(
        app.get("Encounter?date=ge2026-02-30").await,
        400,
        "value",
        None,
    )
    .await;
    assert_outcome(
        app.get("Encounter?status:fuzzy=x").await,
        400,
        "not-supported",
        None,
    )
    .await;
}

async fn index_follows_updates_and_deletes(app: TestApp) {
    let (p, dr, org) = seed_people(&app).await;
    let mut sr = app
        .create(&referral(&p, &dr, &org, "active", "2026-11-01"))
        .await;
    let id = s(&sr["id"]);
    sr["status"] = json!("completed");
    assert_eq!(
        app.put_json(&format!("ServiceRequest/{id}"), &sr)
            .await
            .status(),
        200
    );
    assert_eq!(
        ids(&app.search("ServiceRequest?status=active").await).len(),
        0
    );
    assert_eq!(
        ids(&app.search("ServiceRequest?status=completed").await),
        vec![id.clone()]
    );
    app.client
        .delete(app.url(&format!("ServiceRequest/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ids(&app.search("ServiceRequest?status=completed").await).len(),
        0
    );
}
