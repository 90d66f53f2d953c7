/**
 * The tasks' second public face: auto-labelling pose images with a TF.js teacher model. Kept
 * apart from index.ts so that a process that never runs a model (the coordinator) loads no
 * TF.js with the tasks it checks jobs against.
 */
export { autoLabel, decodeImage, labelPerson, loadTeacher, TEACHERS, type AutoLabel, type Teacher, type TeacherName } from './pose/autolabel.js';
