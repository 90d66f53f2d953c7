/**
 * The COCO-17 keypoint skeleton (Lin et al. 2014, "Microsoft COCO"): keypoint names in COCO
 * order and their indices. Every keypoint tensor in the project (exercise sequences, pose
 * labels, the keypoint head, model cards) uses this order.
 */

/** COCO-17 keypoint names in COCO order. */
export const COCO_KEYPOINTS = [
  'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
  'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
  'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
] as const;
export const NUM_JOINTS = 17;

/** Keypoint indices by name. */
export const KP = Object.freeze(Object.fromEntries(COCO_KEYPOINTS.map((n, i) => [n, i]))) as Readonly<Record<(typeof COCO_KEYPOINTS)[number], number>>;
