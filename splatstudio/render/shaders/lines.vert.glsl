// Overlay lines and points (camera frustums, axes, grid, sparse points).
uniform mat4 u_mvp;         // clip <- world
uniform float u_point_size;
attribute vec3 a_position;
attribute vec4 a_color;
varying vec4 v_color;

void main() {
    gl_Position = u_mvp * vec4(a_position, 1.0);
    gl_PointSize = u_point_size;
    v_color = a_color;
}
