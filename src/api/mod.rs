//! The HTTP API: thin handlers over the store. `routes` wires them; anything that
//! matches no route, or a route but not its method, still gets an OperationOutcome.

pub mod access;
pub mod auth;
pub mod bundle;
pub mod consent;
pub mod context;
pub mod error;
pub mod handoffs;
pub mod operations;
pub mod rest;
pub mod search;
pub mod subscriptions;
pub mod v1;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::fhir::outcome::IssueCode;
use crate::startup::AppState;
use error::ApiError;
use rest::{ctx_or_return, State};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .configure(v1::routes)
        .service(
            web::scope("/fhir")
                .service(
                    web::resource(["", "/"])
                        .post(bundle::post)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/$process-message")
                        .post(subscriptions::process_message)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/metadata")
                        .get(search::metadata)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/_history")
                        .get(search::history_system)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/{type}")
                        .get(search::search_get)
                        .post(rest::create)
                        .put(rest::conditional_update)
                        .delete(rest::conditional_delete)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/_search")
                        .post(search::search_post)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/Subscription/$status")
                        .route(web::get().to(subscriptions::status))
                        .route(web::post().to(subscriptions::status))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/Subscription/{id}/$status")
                        .route(web::get().to(subscriptions::status))
                        .route(web::post().to(subscriptions::status))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/Subscription/{id}/$events")
                        .route(web::get().to(subscriptions::events))
                        .route(web::post().to(subscriptions::events))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/Consent/$evaluate")
                        .post(consent::evaluate)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/Patient/{id}/$disclosures")
                        .get(consent::disclosures)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/Task/{id}/$accept")
                        .post(handoffs::accept)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/Task/{id}/$decline")
                        .post(handoffs::decline)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/$validate")
                        .post(operations::validate)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/_history")
                        .get(search::history_type)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/{id}")
                        .get(rest::read)
                        .put(rest::update)
                        .delete(rest::delete)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/{id}/_history")
                        .get(search::history_instance)
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/{id}/_history/{vid}")
                        .get(rest::vread)
                        .default_service(web::to(method_not_allowed)),
                ),
        )
        .default_service(web::to(not_found));
}

async fn method_not_allowed(req: HttpRequest, state: State) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    ctx.error(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        IssueCode::NotSupported,
        format!("{} is not supported on {}", req.method(), req.path()),
    ))
}

async fn not_found(req: HttpRequest, state: State) -> HttpResponse {
    let ctx = ctx_or_return!(req, state);
    ctx.error(ApiError::not_found(format!(
        "No endpoint at {}",
        req.path()
    )))
}

/// Liveness and readiness: 200 when the store answers.
async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok()
            .json(serde_json::json!({"status": "ok", "store": state.store.backend()})),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unavailable");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable"}))
        }
    }
}
