//! Fresh, empty databases on the PostgreSQL and MariaDB servers the tests are pointed at, so
//! tests that run the binary on a server database never see each other's rows.

/// Creates a database named `<prefix>_<pid>_<nanos>` on the server of `url` (a `postgres://`
/// or `mysql://` URL from a `LATCHKEY_TEST_*` variable) and returns the URL of it. Panics,
/// naming the variable, when the server is unreachable: a set variable means "run".
pub async fn fresh_database(url: &str, prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!("{prefix}_{}_{nanos}", std::process::id());
    assert!(
        name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "a database name of letters, digits and _: {name}"
    );
    // The name is checked above: a fixed prefix, digits and _.
    let create = sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"));
    if url.starts_with("mysql:") {
        let admin = sqlx::MySqlPool::connect(url)
            .await
            .unwrap_or_else(|e| panic!("LATCHKEY_TEST_MYSQL={url} is set but unreachable: {e}"));
        sqlx::raw_sql(create)
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
    } else {
        let admin = sqlx::PgPool::connect(url)
            .await
            .unwrap_or_else(|e| panic!("LATCHKEY_TEST_POSTGRES={url} is set but unreachable: {e}"));
        sqlx::raw_sql(create)
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
    }
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    format!("{base}/{name}")
}
