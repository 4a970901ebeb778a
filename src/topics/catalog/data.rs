//! The topics themselves. docs/topics.md presents the same table to subscribers; a
//! test keeps the two in step.

use super::{FilterDef, Topic};

const fn patient(resource: &'static str) -> FilterDef {
    FilterDef {
        param: "patient",
        resource,
        description: "The patient the record is about (its subject; Consent.patient).",
        search: "patient",
        definition: Some("http://hl7.org/fhir/SearchParameter/clinical-patient"),
        targets: &["Patient"],
    }
}

const ENCOUNTER_FILTERS: &[FilterDef] = &[
    patient("Encounter"),
    FilterDef {
        param: "practitioner",
        resource: "Encounter",
        description: "Any attending (participant type ATND) or the patient's primary care \
            provider (participant type v2-0443 PP) of the encounter.",
        search: "participant",
        definition: None,
        targets: &["Practitioner", "PractitionerRole"],
    },
    FilterDef {
        param: "organization",
        resource: "Encounter",
        description: "The organization responsible for the encounter (serviceProvider), or \
            the organization the patient came from or goes to (hospitalization.origin, \
            hospitalization.destination), e.g. the post-acute provider.",
        search: "service-provider",
        definition: None,
        targets: &["Organization"],
    },
    FilterDef {
        param: "location",
        resource: "Encounter",
        description: "Any location the encounter lists (Encounter.location.location).",
        search: "location",
        definition: Some("http://hl7.org/fhir/SearchParameter/Encounter-location"),
        targets: &["Location"],
    },
];

const REFERRAL_FILTERS: &[FilterDef] = &[
    patient("ServiceRequest"),
    FilterDef {
        param: "requester",
        resource: "ServiceRequest",
        description: "The referrer (ServiceRequest.requester).",
        search: "requester",
        definition: Some("http://hl7.org/fhir/SearchParameter/ServiceRequest-requester"),
        targets: &["Practitioner", "PractitionerRole", "Organization"],
    },
    FilterDef {
        param: "performer",
        resource: "ServiceRequest",
        description: "Any receiver of the referral (ServiceRequest.performer).",
        search: "performer",
        definition: Some("http://hl7.org/fhir/SearchParameter/ServiceRequest-performer"),
        targets: &[
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "CareTeam",
            "HealthcareService",
        ],
    },
];

/// What travels with an admission or an encounter update.
const ADMISSION_CONTEXT: &[&str] = &[
    "the Patient",
    "the attending practitioners and the patient's PCP",
    "the hospital (serviceProvider) and the location",
];

const ENCOUNTER_INCLUDES: &[&str] = &[
    "Encounter:patient",
    "Encounter:participant",
    "Encounter:service-provider",
    "Encounter:location",
];

const REFERRAL_INCLUDES: &[&str] = &[
    "ServiceRequest:patient",
    "ServiceRequest:requester",
    "ServiceRequest:performer",
];

const HANDOFF_FILTERS: &[FilterDef] = &[
    patient("Task"),
    FilterDef {
        param: "recipient",
        resource: "Task",
        description: "The party the handoff is escalated or returned to: the alternate \
            recipient configured for the receiver, or the sender's coordinator.",
        search: "owner",
        definition: None,
        targets: &[
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "CareTeam",
        ],
    },
    FilterDef {
        param: "owner",
        resource: "Task",
        description: "The receiving party the handoff was addressed to (Task.owner).",
        search: "owner",
        definition: Some("http://hl7.org/fhir/SearchParameter/Task-owner"),
        targets: &[
            "Practitioner",
            "PractitionerRole",
            "Organization",
            "CareTeam",
        ],
    },
    FilterDef {
        param: "requester",
        resource: "Task",
        description: "The sending party (Task.requester).",
        search: "requester",
        definition: Some("http://hl7.org/fhir/SearchParameter/Task-requester"),
        targets: &["Practitioner", "PractitionerRole", "Organization"],
    },
];

pub(super) static TOPICS: &[Topic] = &[
    Topic {
        code: "encounter-start",
        url: "http://handoff.example.org/fhir/SubscriptionTopic/encounter-start",
        title: "Admission",
        description: "A patient is admitted: an Encounter becomes in-progress or onleave \
            from any other status, or is created so.",
        resource: "Encounter",
        events: &["PatientAdmitted"],
        retractions: &["AdmissionCancelled"],
        filters: ENCOUNTER_FILTERS,
        context: ADMISSION_CONTEXT,
        includes: ENCOUNTER_INCLUDES,
        rev_includes: &[],
        davinci_event: Some("notification-admit"),
    },
    Topic {
        code: "encounter-transfer",
        url: "http://handoff.example.org/fhir/SubscriptionTopic/encounter-transfer",
        title: "Transfer",
        description: "A patient is transferred: an active Encounter stays active and its \
            current (first) location changes.",
        resource: "Encounter",
        events: &["PatientTransferred"],
        retractions: &[],
        filters: ENCOUNTER_FILTERS,
        context: &[
            "the Patient",
            "the new location (current first) and the attending practitioners",
            "the hospital (serviceProvider)",
        ],
        includes: ENCOUNTER_INCLUDES,
        rev_includes: &[],
        davinci_event: Some("notification-transfer"),
    },
    Topic {
        code: "encounter-end",
        url: "http://handoff.example.org/fhir/SubscriptionTopic/encounter-end",
        title: "Discharge",
        description: "A patient is discharged: an Encounter becomes finished (with its \
            end time), or is created finished.",
        resource: "Encounter",
        events: &["PatientDischarged"],
        retractions: &["DischargeCancelled"],
        filters: ENCOUNTER_FILTERS,
        context: &[
            "the Patient",
            "the discharge summary and the medication list (the travelling documents)",
            "the care plan",
            "the follow-up owed (what, by whom, by when)",
            "the discharge disposition and destination, the diagnoses",
        ],
        includes: &[
            "Encounter:patient",
            "Encounter:participant",
            "Encounter:service-provider",
            "Encounter:location",
            "Encounter:diagnosis",
        ],
        rev_includes: &["CarePlan:encounter"],
        davinci_event: Some("notification-discharge"),
    },
    Topic {
        code: "encounter-update",
        url: "http://handoff.example.org/fhir/SubscriptionTopic/encounter-update",
        title: "Encounter details changed",
        description: "An HL7 v2 A08 (update patient information) changed what an encounter \
            says without changing its state; repeated A08s for one visit within the \
            coalescing window (hl7_a08_window_secs) raise one event.",
        resource: "Encounter",
        events: &["EncounterUpdated"],
        retractions: &[],
        filters: ENCOUNTER_FILTERS,
        context: ADMISSION_CONTEXT,
        includes: ENCOUNTER_INCLUDES,
        rev_includes: &[],
        davinci_event: None,
    },
    Topic {
        code: "referral-request",
        url: "http://handoff.example.org/fhir/SubscriptionTopic/referral-request",
        title: "Referral requested",
        description: "A referral is requested: a ServiceRequest (with its Task) becomes \
            requested, or is created so.",
        resource: "ServiceRequest",
        events: &["ReferralRequested"],
        retractions: &[],
        filters: REFERRAL_FILTERS,
        context: &[
            "the Patient",
            "the referrer and the receivers",
            "the Task that tracks the referral",
            "the reasons and the tests already done (supportingInfo)",
        ],
        includes: REFERRAL_INCLUDES,
        rev_includes: &["Task:focus"],
        davinci_event: Some("notification-referral"),
    },
    Topic {
        code: "referral-status",
        url: "http://handoff.example.org/fhir/SubscriptionTopic/referral-status",
        title: "Referral answered or closed",
        description: "A referral is accepted, rejected, completed or cancelled (the status \
            of the ServiceRequest and its Task).",
        resource: "ServiceRequest",
        events: &[
            "ReferralAccepted",
            "ReferralRejected",
            "ReferralCompleted",
            "ReferralCancelled",
        ],
        retractions: &[],
        filters: REFERRAL_FILTERS,
        context: &[
            "the Patient",
            "the Task (its status, owner and business status)",
            "the consult result (Task.output) when completed",
        ],
        includes: REFERRAL_INCLUDES,
        rev_includes: &["Task:focus"],
        davinci_event: Some("notification-referral"),
    },
    Topic {
        code: "careplan-change",
        url: "http://handoff.example.org/fhir/SubscriptionTopic/careplan-change",
        title: "Care plan changed",
        description: "A coordination care plan is created or says something new (status, \
            goals, activities, care team, coordinator).",
        resource: "CarePlan",
        events: &["CarePlanChanged"],
        retractions: &[],
        filters: &[patient("CarePlan")],
        context: &[
            "the Patient",
            "the care team and the coordinator",
            "the goals and the activities",
        ],
        includes: &["CarePlan:patient", "CarePlan:care-team", "CarePlan:goal"],
        rev_includes: &[],
        davinci_event: Some("notification-tx-change"),
    },
    Topic {
        code: "consent-change",
        url: "http://handoff.example.org/fhir/SubscriptionTopic/consent-change",
        title: "Consent changed",
        description: "A consent directive is created or says something new (status, \
            permit or deny, actors, purposes, data, periods).",
        resource: "Consent",
        events: &["ConsentChanged"],
        retractions: &[],
        filters: &[patient("Consent")],
        context: &["the Patient", "the actors the directive names"],
        includes: &["Consent:patient", "Consent:actor"],
        rev_includes: &[],
        davinci_event: None,
    },
    Topic {
        code: "handoff-escalation",
        url: "http://handoff.example.org/fhir/SubscriptionTopic/handoff-escalation",
        title: "Handoff escalated or returned",
        description: "A handoff (discharge, transfer or referral Task) is overdue and \
            escalated by the deadline sweep (to the alternate recipient, then back to the \
            sender's coordinator), or declined by its receiver and returned to the sender.",
        resource: "Task",
        events: &["HandoffEscalated", "HandoffDeclined"],
        retractions: &[],
        filters: HANDOFF_FILTERS,
        context: &[
            "the Patient",
            "the handoff Task (status, business status, deadline, the escalation and its reason)",
        ],
        includes: &["Task:patient", "Task:owner", "Task:requester", "Task:focus"],
        rev_includes: &[],
        davinci_event: None,
    },
];
