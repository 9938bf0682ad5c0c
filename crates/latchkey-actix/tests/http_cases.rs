//! The shared table of endpoint and guard cases, over real HTTP, on actix-web.

use actix_web::{App, HttpServer, web};
use latchkey_actix::{Authenticated, BearerGuard, configure};
use latchkey_testkit::http_cases::{Fixture, REALM, me_json, run};

async fn me(Authenticated(token): Authenticated) -> web::Json<serde_json::Value> {
    web::Json(me_json(&token))
}

#[actix_web::test]
async fn actix_answers_the_shared_table() {
    let fx = Fixture::new().await;
    let provider = fx.provider();
    let guard = BearerGuard::new(fx.kit.provider.jwt_guard(REALM));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(guard.clone()))
            .configure(configure(provider.clone()))
            .route("/api/me", web::get().to(me))
            .service(
                web::resource("/api/read")
                    .wrap(guard.require("read"))
                    .route(web::get().to(me)),
            )
            .service(
                web::resource("/api/admin")
                    .wrap(guard.require("admin"))
                    .route(web::get().to(me)),
            )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let addr = *server.addrs().first().expect("a bound address");
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    run(&format!("http://{addr}"), &fx).await;
    handle.stop(true).await;
}
