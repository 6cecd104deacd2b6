"""What the reliability benchmark measures on, and at what pace."""

from __future__ import annotations

FAMILIES = ("text", "image", "voice")
STORM_FAMILIES = ("image", "voice")
OVERLOAD_FACTOR = 10
TITLES = {
    "image": "ServeReplica:image:Image",
    "voice": "ServeReplica:voice:Voice",
    "text": "ServeReplica:text:Text",
    "engine": "VLLM::EngineCore",
}
RSS_EVERY_S = 0.1
IDLE_S = 2.0  # RSS sampled this long before a storm
CALL_EVERY_S = 0.2  # the background loop's pace during a fault
CALL_TIMEOUT_S = 5.0
HEALTH_EVERY_S = 0.1
HEALTH_TIMEOUT_S = 2.0
DOWN_WAIT_S = 20.0  # a kill not seen by Health in this long: reported as such
RECOVER_S = 300.0
BASELINE_S = 1.0  # background calls before each kill
AFTER_SERVING_S = 10.0  # background calls go on until an OK, at most this long
LONG_SPEECH = " ".join(f"Sentence number {i} of a long story." for i in range(50))
MIB = 1024**2
