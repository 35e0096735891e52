// Public entry point of @mergeloom/engine/output: what other packages may import.
export { JOB_MARKER_FILE, TEMP_OUTPUT_TAG, readJobMarker, writeJobMarker } from "./job-marker.js";
export { OutputDir } from "./output-dir.js";
