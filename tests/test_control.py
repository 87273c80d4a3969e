"""Control messages: concurrent writers lose nothing, and the worker sees every write once."""

import os
import threading

from rlhf_core.control import ControlWatcher, control_path, read_control, write_control


def test_stop_and_apply_from_two_threads_lose_nothing(tmp_path):
    run_dir = str(tmp_path)
    writes = 200
    start = threading.Barrier(2)

    def apply_kl():
        start.wait()
        for i in range(1, writes + 1):
            write_control(run_dir, kl_coef=i / 100)

    def retune_clip_then_stop():
        start.wait()
        for i in range(1, writes + 1):
            write_control(run_dir, clip_range=i / 100)
            if i == writes // 2:
                write_control(run_dir, stop=True)

    threads = [threading.Thread(target=apply_kl), threading.Thread(target=retune_clip_then_stop)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    msg = read_control(run_dir)
    assert msg["seq"] == 2 * writes + 1  # every write counted once
    assert msg["stop"] is True  # the Stop survived every later Apply
    assert msg["kl_coef"] == writes / 100 and msg["clip_range"] == writes / 100


def test_watcher_sees_two_writes_within_one_clock_tick(tmp_path):
    run_dir = str(tmp_path)
    watcher = ControlWatcher(run_dir)
    assert watcher.poll() is None
    write_control(run_dir, kl_coef=0.1)
    tick = os.stat(control_path(run_dir)).st_mtime_ns
    assert watcher.poll()["kl_coef"] == 0.1
    assert watcher.poll() is None  # each message once
    write_control(run_dir, stop=True)
    os.utime(control_path(run_dir), ns=(tick, tick))  # the second write landed in the same mtime tick
    msg = watcher.poll()
    assert msg is not None and msg["stop"] is True
