//! Builds the container test image `localhost/cap-test-game:latest` (the
//! stand-in game and Debian's static busybox), as the container tests do,
//! for `cap up --runtime container` by hand:
//!
//! ```sh
//! cargo run -p cap-e2e --example test_image
//! ```

fn main() {
    println!("{}", cap_e2e::podman::test_image());
}
