#version 150 compatibility
// Gaussian falloff opacity exp(-1/2 d^T S^-1 d), cut at the 3-sigma ellipse and where alpha would
// fall below 1/255 (both are d^T S^-1 d > k^2, see splat.vert.glsl), at most 0.99, written as
// premultiplied colour for back-to-front blending with (ONE, ONE_MINUS_SRC_ALPHA).
// The exponent comes in base 2, pre-scaled by the geometry stage. A cut fragment writes alpha 0,
// which leaves the framebuffer exactly as it was: cheaper than `discard` on llvmpipe.

flat in vec4 v_color;
flat in vec3 v_center;  // xy: the centre (window coordinates), z: the cut of q
flat in vec3 v_conic;

void main() {
    vec2 d = gl_FragCoord.xy - v_center.xy;  // from the centre to this pixel's centre
    float q = (v_conic.x * d.x + v_conic.y * d.y) * d.x + v_conic.z * d.y * d.y;  // -1/2 log2(e) m
    float alpha = q < v_center.z ? 0.0 : min(0.99, v_color.a * exp2(q));
    gl_FragColor = vec4(v_color.rgb * alpha, alpha);
}
