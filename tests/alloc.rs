//! Training keeps freed memory for reuse (src/alloc.rs): a large block freed and allocated
//! again is served from memory the process already has, not mapped and faulted in afresh.
//! Its own test binary without libtest's harness (Cargo.toml: `harness = false`), so it runs on the
//! main thread, where the trainer allocates its activations (glibc gives other threads arenas of
//! their own, which map large blocks whatever the setting), and no other test moves the counter.

/// Minor page faults of this process so far (/proc/self/stat, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(7).unwrap().parse().unwrap()
}

/// Page faults taken while allocating `bytes`, writing one byte per page and freeing it again.
fn faults_for_a_fresh_block(bytes: usize) -> u64 {
    let before = minor_faults();
    let mut v: Vec<u8> = Vec::with_capacity(bytes);
    for page in v.spare_capacity_mut().chunks_mut(4096) {
        page[0].write(1);
    }
    std::hint::black_box(&v);
    drop(v);
    minor_faults() - before
}

fn main() {
    if cfg!(all(target_os = "linux", target_env = "gnu")) {
        a_freed_large_block_is_reused_without_new_page_faults();
        println!("test a_freed_large_block_is_reused_without_new_page_faults ... ok");
        // the line libtest would print, which .ci/run counts
        println!("\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
    } else {
        println!("test a_freed_large_block_is_reused_without_new_page_faults ... skipped (glibc only)");
        println!("\ntest result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out");
    }
}

fn a_freed_large_block_is_reused_without_new_page_faults() {
    const BYTES: usize = 256 << 20;
    assert!(!conceptree::alloc::left_to_the_user(), "GLIBC_TUNABLES or a MALLOC_*_ variable is set: the setting under test is left to it");
    // glibc's default: a block this large is mapped when allocated and unmapped when freed, so
    // every round faults its pages in again
    let default_round = faults_for_a_fresh_block(BYTES);
    let again = faults_for_a_fresh_block(BYTES);
    assert!(default_round >= 64 && again >= 64, "by default each round faults: {default_round}, {again}");
    conceptree::alloc::keep_freed_memory();
    faults_for_a_fresh_block(BYTES); // the heap grows to hold it once
    let kept = faults_for_a_fresh_block(BYTES);
    assert!(kept * 4 < again, "freed memory reused: {kept} faults in a round, {again} before");
}
