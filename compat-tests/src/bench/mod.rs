//! Pieces shared by the `bench_*` binaries: a latency histogram, what
//! `/proc` says about a process and the machine, and child processes that
//! are stopped however the benchmark ends (drop, panic, or a signal).

mod drivers;
mod opts;
mod process;
mod report;
mod servers;
mod stats;
pub use drivers::{awk_num, awk_str, copy_dir, snapshot_drivers, Drivers, Results};
pub use opts::{thread_counts, CommonOpts};
pub use process::{
    cleanup_on_signals, exit, exit_with, free_port_block, output_within, status_within, Kid, OnExit,
};
pub use report::{
    format_g, goal, latency_rows, median, per_round, print_table, ratio, round_ratios, utc_minute,
    Latency, Row,
};
pub use servers::{
    bench_bins, broker_conf_base, mkdir, on_path, reference_broker_libs, spawn_java_broker,
    start_our_namesrv, wait_listen, work_dir, write_file, Ns, Res, MAVEN_TIMEOUT, STOP_GRACE,
};
pub use stats::{
    clk_tck, cpu_model, cpu_ticks, loadavg, mib, nproc, pid_alive, rss_anon_kib, rss_kib,
    status_kib, Histogram,
};
