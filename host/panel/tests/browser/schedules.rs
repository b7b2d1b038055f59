//! Schedules in the browser: the bundled scheduler's widget on a server
//! page, at phone width: a schedule made from its form (submitted with
//! the keyboard), listed with its next run, run now, and its run shown,
//! against a real Agent.

use super::files::installed_server;
use super::*;

/// The scheduler's widget.
const WIDGET: &str = "[data-plugin=scheduler][data-contribution=schedules]";

/// Sets the field labelled `label` in the widget to `value` (an input's
/// text or a select's option).
async fn set_field(client: &Client, label: &str, value: &str) {
    let done = client
        .execute(
            "const w = document.querySelector(arguments[0]);
             const label = [...w.querySelectorAll('label')].find((l) => l.textContent === arguments[1]);
             if (!label) return false;
             const input = document.getElementById(label.htmlFor);
             input.value = arguments[2];
             input.dispatchEvent(new Event('input', { bubbles: true }));
             input.dispatchEvent(new Event('change', { bubbles: true }));
             return input.value === arguments[2];",
            vec![json!(WIDGET), json!(label), json!(value)],
        )
        .await
        .expect("a script result");
    assert_eq!(done, json!(true), "the field {label:?} takes {value:?}");
}

/// Clicks the widget's button labelled `label`.
async fn press(client: &Client, label: &str) {
    let done = client
        .execute(
            "const w = document.querySelector(arguments[0]);
             const b = [...w.querySelectorAll('button')].find((b) => b.textContent === arguments[1]);
             if (!b) return false;
             b.click();
             return true;",
            vec![json!(WIDGET), json!(label)],
        )
        .await
        .expect("a script result");
    assert_eq!(done, json!(true), "a button {label:?}");
}

#[tokio::test]
async fn an_admin_makes_a_schedule_in_the_server_widget_runs_it_now_and_sees_the_run_at_phone_width()
 {
    let driver = start_driver();
    let world = world(Setup {
        plugins: &["local-password", "test-game", "scheduler"],
        agent: true,
        ..Setup::default()
    })
    .await;
    let server_id = installed_server(&world, "Scheduled", 1000).await;
    let client = browser(&driver, 390, 844).await;
    sign_in(&client, &world.panel, "admin", ADMIN_PASSWORD).await;
    client
        .goto(&world.panel.url(&format!("/#/servers/{server_id}")))
        .await
        .expect("navigating");
    wait_for_text(&client, &format!("{WIDGET} .pui-body"), "No schedules yet.").await;

    set_field(&client, "Name", "Morning start").await;
    set_field(
        &client,
        "Cron (minute hour day-of-month month day-of-week)",
        "0 6 * * 1-5",
    )
    .await;
    set_field(
        &client,
        "Time zone (IANA, e.g. Europe/Berlin)",
        "Europe/Berlin",
    )
    .await;
    set_field(&client, "First task", "power").await;
    set_field(
        &client,
        "Command, power action (start, stop, restart, kill) or backup name",
        "start",
    )
    .await;
    // Enter in the name field submits the form.
    let name = client
        .execute(
            "const w = document.querySelector(arguments[0]);
             const label = [...w.querySelectorAll('label')].find((l) => l.textContent === 'Name');
             return '#' + label.htmlFor;",
            vec![json!(WIDGET)],
        )
        .await
        .expect("a script result");
    let name = name.as_str().expect("a selector").to_owned();
    wait_for(&client, &name)
        .await
        .send_keys(ENTER)
        .await
        .expect("typing Enter");
    wait_for_text(
        &client,
        &format!("{WIDGET} .pui-message"),
        "Schedule Morning start created",
    )
    .await;
    let shown = wait_for_text(&client, &format!("{WIDGET} .pui-body"), "0 6 * * 1-5").await;
    assert!(shown.contains("power start"), "{shown}");
    assert!(
        shown.contains("CET") || shown.contains("CEST"),
        "the next run in the schedule's zone: {shown}"
    );
    assert_fits(&client, "the schedules widget").await;
    screenshot(&client, "schedules").await;

    press(&client, "Run now").await;
    wait_for_text(
        &client,
        &format!("{WIDGET} .pui-message"),
        "Schedule Morning start runs now",
    )
    .await;
    // The run starts the server; the widget shows it once reloaded.
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let server = call(
            &world.panel,
            "GET",
            &format!("/api/v1/servers/{server_id}"),
            &world.admin_token,
            None,
            200,
        )
        .await;
        if server["state"] == json!("running") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the schedule never started the server: {server:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.refresh().await.expect("reloading");
    let shown = wait_for_text(&client, &format!("{WIDGET} .pui-body"), "manual").await;
    assert!(shown.contains("start queued"), "{shown}");
    assert_fits(&client, "the schedules widget with a run").await;
    screenshot(&client, "schedules-run").await;
    client.close().await.expect("closing the browser");
}
